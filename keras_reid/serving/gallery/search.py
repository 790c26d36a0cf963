"""A gallery index at work: built from feature shards, searched with images, scored.

:func:`build_index` builds and saves a :class:`~keras_reid.serving.gallery.index.GalleryIndex`
from embedded shards (``keras-reid index build``); :func:`search_images`
embeds query images with the index's model and searches (``keras-reid
search``); :func:`evaluate_with_index` scores queries through the index as
:func:`~keras_reid.evaluation.metrics.evaluate` does by brute force.
"""

import os

import numpy as np

from keras_reid.checks import is_int
from keras_reid.errors import ReIDError
from keras_reid.serving.gallery.features import model_fingerprint, read_features
from keras_reid.serving.gallery.index import BLOCK_DISTANCES, GalleryIndex


def build_index(paths, out, kind="exact", overwrite=False, **params):
    """Read the features files ``paths``, index them and save the index to ``out``.

    What ``keras-reid index build`` runs. Returns the :class:`GalleryIndex`.
    """
    out = os.path.abspath(os.path.expanduser(os.fspath(out)))
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        # Before reading (possibly) millions of rows.
        raise ReIDError(f"{out} exists and is not empty; choose another --out or pass --overwrite.")
    index = GalleryIndex.build(read_features(paths), kind=kind, **params)
    index.save(out, overwrite=overwrite)
    return index


def search_images(index, model, images, top=10, tta="index", batch_size=128):
    """Embed image files with ``model`` and search them in ``index``: one DataFrame of hits.

    What ``keras-reid search`` runs. The model must be the index's (same
    dimension and weights: a one-line error otherwise); images are embedded
    with the index's test-time augmentation unless ``tta`` (None or "flip")
    says otherwise.

    Args:
        index: a :class:`GalleryIndex` or the path of an index folder.
        model: the path of the ``.keras`` model (or a ``keras.Model``).
        images: image file paths, any size.
        top: hits per query (default 10).
        tta: "index" (default: as the index's features), None or "flip".

    Returns:
        :meth:`GalleryIndex.search`'s DataFrame with a ``query_path`` column.
    """
    from keras_reid.serving.extractor import SERVED_TTA, FeatureExtractor
    from keras_reid.serving.model_io import load_model

    if not isinstance(index, GalleryIndex):
        index = GalleryIndex.load(index)
    if tta == "index":
        tta = index.meta.get("tta")
        if tta not in SERVED_TTA:
            raise ReIDError(
                f"the index's features were embedded with tta {tta!r}, which search cannot "
                f"apply; expected one of: {', '.join(map(str, SERVED_TTA))}."
            )
    path = None
    if isinstance(model, (str, os.PathLike)):
        path = os.path.abspath(os.path.expanduser(os.fspath(model)))
        model = load_model(path)
    extractor = FeatureExtractor(model, batch_size=batch_size, tta=tta)
    index.check_model(model_fingerprint(extractor.model), extractor.spec.dims["embedding"], path)
    images = [os.fspath(image) for image in images]
    hits = index.search(extractor.embed(images), top=top)
    hits.insert(1, "query_path", np.asarray(images, dtype=object)[hits["query"].to_numpy()])
    return hits


def evaluate_with_index(
    index, query_features, query_table, ranks=(1, 5, 10), search_all=None, block_queries=None
):
    """Score a query set against the index's gallery with the Market-1501 rule.

    The index ranks the whole gallery for every query (:meth:`GalleryIndex.distances`),
    ``block_queries`` queries at a time; the ranking is scored by
    :func:`keras_reid.evaluation.metrics.rank_metrics_in_blocks` (junk pid -1 and
    same-id same-camera gallery rows ignored), as
    :func:`keras_reid.evaluation.metrics.evaluate` does. With an exact index the row
    equals ``evaluate(query_features, gallery_features, query_table,
    gallery_table, metric="cosine")``, whatever the block size.

    Args:
        search_all: see :meth:`GalleryIndex.distances`.
        block_queries: queries per distance block. Default: as many as keep a
            block within 2**26 distances (256 MB), so a gallery of millions
            is scored without its ``num_query x num_gallery`` matrix.

    Returns:
        :func:`~keras_reid.evaluation.metrics.evaluate`'s one-row DataFrame.

    Example:
        >>> row = evaluate_with_index(index, query.embeddings, query.table)
    """
    from keras_reid.evaluation.metrics.evaluate import ProtocolRanking, _check_table, results_row
    from keras_reid.evaluation.metrics.ranking import rank_metrics_in_blocks

    ranks = tuple(ranks)
    _check_table(query_table, query_features, "query")
    if block_queries is None:
        block_queries = max(1, BLOCK_DISTANCES // max(1, len(index)))
    if not is_int(block_queries, minimum=1):
        raise ReIDError(
            f"block_queries must be a positive integer. Received: block_queries={block_queries!r}"
        )
    features = np.asarray(query_features)
    blocks = (
        (start, index.distances(features[start : start + block_queries], search_all=search_all))
        for start in range(0, len(features), block_queries)
    )
    results = rank_metrics_in_blocks(
        blocks,
        query_table["pid"].to_numpy(),
        index.table["pid"].to_numpy(),
        query_table["camid"].to_numpy(),
        index.table["camid"].to_numpy(),
        max_rank=int(max(ranks)),
    )
    # No distance matrix: the row needs only the results and the tables.
    ranking = ProtocolRanking(None, query_table, index.table, results, "market")
    return results_row(ranking, ranks, metric=f"cosine ({index.kind} index)")
