"""PUL's results rows: the target scores of every iteration, with the selection counts."""

import pandas as pd

from keras_reid.evaluation.evaluator import evaluate_model
from keras_reid.evaluation.reports import SCORE_COLUMNS

RESULT_COLUMNS = ("model", "iteration", "threshold", "selected", "clusters_used", *SCORE_COLUMNS)


def score_row(model, target, name, t, threshold=None, table=None, tta="flip"):
    """A results row: the model's target scores (L2-normalised), selection counts.

    ``tta``: "flip" (the image and its mirror) or "five-crop-flip" (Hermans et
    al.'s ten views, as the EmbAE paper scores).
    """
    scores = evaluate_model(model, target, tta=tta, normalize=True, progress=False).iloc[0]
    selected = table[table["selected"]] if table is not None else None
    return {
        "model": name,
        "iteration": t,
        "threshold": threshold,
        "selected": None if table is None else len(selected),
        "clusters_used": None if table is None else int(selected["cluster"].nunique()),
        **{column: float(scores[column]) for column in SCORE_COLUMNS},
    }


def results_frame(rows):
    """The results rows as a DataFrame; the start row has no threshold or counts (empty cells)."""
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return frame.astype({"selected": "Int64", "clusters_used": "Int64"})
