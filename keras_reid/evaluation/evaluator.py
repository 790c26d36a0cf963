"""Evaluate a model on a dataset: the ``keras-reid evaluate`` path.

The model is used once, to extract features (with optional test-time
augmentation); everything after that is :mod:`keras_reid.evaluation.metrics`,
which works on features and tables only.
"""

import os

from keras_reid.checks import is_int
from keras_reid.data.images import IMAGE_ERRORS, explain_unreadable
from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics.evaluate import rank_protocol, results_row
from keras_reid.evaluation.reports import write_report
from keras_reid.serving.extract import extract_features
from keras_reid.serving.model_io import (
    as_dict_outputs,
    check_finite_features,
    check_model,
    load_keras_model,
)

# Which protocol a dataset's tables are scored with.
PROTOCOL_OF = {"cuhk03": "cuhk03", "cuhk03_folders": "cuhk03", "mars": "video"}


def evaluate_model(
    model,
    dataset,
    tta=None,
    rerank=False,
    normalize=True,
    metric="euclidean",
    batch_size=128,
    out=None,
    worst_first=True,
    progress=True,
):
    """Score ``model`` on ``dataset``'s query/gallery; optionally write a report folder.

    Args:
        model: a Keras model with an "embedding" output, or the path of a .keras file.
        dataset: a :class:`keras_reid.data.ReIDDataset` with query and gallery tables.
        tta: test-time augmentation, see :func:`keras_reid.serving.extract.extract_features`.
        rerank: k-reciprocal re-ranking (True, or a dict of k1, k2, lambda_value).
        normalize: L2-normalise embeddings before distances (default True).
        metric: "euclidean", "sqeuclidean" or "cosine".
        batch_size: images per forward pass.
        out: a folder to write results.csv, results.md, cmc.png and ranked_lists.png.
        worst_first: ranked lists show the queries with the lowest AP first.

    Returns:
        a one-row DataFrame (rank1, rank5, rank10, mAP, mINP and their -nd forms).

    Example:
        >>> row = evaluate_model("runs/emb/model.keras", load_dataset("synth-b"), tta="flip")
    """
    if not is_int(batch_size, minimum=1):
        raise ReIDError(
            f"batch size (--batch-size) must be a positive integer, e.g. 128 (lower it if "
            f"memory runs out). Received: batch_size={batch_size!r}"
        )
    if isinstance(model, (str, os.PathLike)):
        model = load_keras_model(model)
    else:
        model = as_dict_outputs(model)
        check_model(model)
    if dataset.query.empty or dataset.gallery.empty:
        raise ReIDError(f"{dataset.label} has no query/gallery split to evaluate on.")
    splits = {"query": dataset.query, "gallery": dataset.gallery}
    try:
        query, gallery = (
            extract_features(model, table, batch_size=batch_size, tta=tta, progress=progress)
            for table in splits.values()
        )
    except ReIDError as error:
        # The query's unreadable images stop the extraction before the gallery is read:
        # name the gallery's too, so that one round of repairs is enough.
        if not isinstance(error.__cause__, IMAGE_ERRORS):
            raise
        named = {f"{dataset.label}/{split}": table for split, table in splits.items()}
        raise explain_unreadable(error.__cause__, named) from error.__cause__
    for features, split in ((query, "query"), (gallery, "gallery")):
        check_finite_features(features, f"model {model.name!r}", f"{dataset.label} {split} images")
    ranking = rank_protocol(
        query,
        gallery,
        dataset.query,
        dataset.gallery,
        metric=metric,
        normalize=normalize,
        rerank=rerank,
        protocol=PROTOCOL_OF.get(dataset.name, "market"),
    )
    row = results_row(ranking, metric=metric, normalize=normalize, rerank=rerank)
    row.insert(0, "dataset", dataset.label)
    row.insert(1, "tta", tta or "none")
    if out is not None:
        write_report(row, ranking, dataset.label, out, worst_first=worst_first)
    return row
