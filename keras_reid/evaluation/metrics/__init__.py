"""Metrics: distances, ranking protocols, re-ranking and results rows.

Features in, numbers out; nothing here needs the model.

* :func:`pairwise_distance` - euclidean, squared euclidean or cosine, optional
  L2 normalisation.
* :func:`rank_metrics` - CMC, mAP and mINP under the Market-1501 rule (or
  "-nd": every same-camera item ignored), as a :class:`RankResult`.
* :func:`cuhk03_single_shot` - CUHK03's single-gallery-shot CMC.
* :func:`pool_tracklets` - frame features to tracklet features (video).
* :func:`re_rank` - k-reciprocal re-ranking (Zhong et al., CVPR 2017).
* :func:`evaluate` - all of the above from features and tables to one
  results-table row; :func:`format_results` prints it in percent.
* :func:`probe_accuracy` - a linear probe: how much of a label (e.g. the
  camera) a feature set holds.
"""

from keras_reid.evaluation.metrics.distance import l2_normalize, pairwise_distance
from keras_reid.evaluation.metrics.evaluate import evaluate, format_results
from keras_reid.evaluation.metrics.probe import probe_accuracy
from keras_reid.evaluation.metrics.ranking import (
    RankResult,
    cuhk03_single_shot,
    rank_metrics,
    rank_metrics_for_rules,
    rank_metrics_in_blocks,
)
from keras_reid.evaluation.metrics.rerank import re_rank
from keras_reid.evaluation.metrics.video import pool_tracklets

__all__ = [
    "RankResult",
    "cuhk03_single_shot",
    "evaluate",
    "format_results",
    "l2_normalize",
    "pairwise_distance",
    "pool_tracklets",
    "probe_accuracy",
    "rank_metrics",
    "rank_metrics_for_rules",
    "rank_metrics_in_blocks",
    "re_rank",
]
