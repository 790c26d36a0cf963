"""Evaluation: scores from features, a model's evaluation, reports and the papers' comparisons.

- :mod:`.metrics`: distances, ranking protocols, re-ranking (features in, numbers out);
- :mod:`.evaluator`: a model scored on a dataset (``keras-reid evaluate``);
- :mod:`.reports` and :mod:`.plots`: results files, tables of runs, figures;
- :mod:`.claims` and :mod:`.compare`: the papers' rows and claims, checked on
  finished runs as paired differences over seeds (the ``evaluation/`` scripts);
- :mod:`.visualize`: attention maps over images (``keras-reid attention``).
"""

from keras_reid.evaluation.evaluator import evaluate_model

__all__ = ["evaluate_model"]
