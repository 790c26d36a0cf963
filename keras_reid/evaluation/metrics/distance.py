"""Pairwise distances between query and gallery features.

All metrics use the dot-product expansion ``||a||² + ||b||² - 2 a·b`` so the
heavy part is one float32 matrix product (BLAS, multi-threaded). The
expansion loses a little precision for nearly identical vectors (a distance
of ~1e-3 instead of 0 for unit vectors), which is far below what changes a
ranking of re-ID features; results are clamped at 0 so rounding never gives
a negative squared distance.
"""

import numpy as np

from keras_reid.errors import ReIDError

METRICS = ("euclidean", "sqeuclidean", "cosine")

# Rows of the output computed at a time: the in-place passes over a block of
# this many rows stay in a few tens of MB whatever the gallery size.
_CHUNK_ROWS = 1024


def _as_features(x, name):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ReIDError(f"{name} must be a 2-D array (images x dimensions); got shape {x.shape}.")
    if x.shape[0] == 0:
        raise ReIDError(f"{name} is empty (shape {x.shape}); nothing to compare.")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ReIDError(f"{name} has NaN or inf in {bad} of {x.shape[0]} feature vectors.")
    return x


def l2_normalize(features, name="features"):
    """Scale every row of ``features`` to unit L2 norm (float32).

    Args:
        features: array of shape (n, d).
        name: what to call the array in error messages.

    Raises:
        ReIDError: when a row is all zeros (its direction is undefined).

    Example:
        >>> l2_normalize(np.array([[3.0, 4.0]]))
        array([[0.6, 0.8]], dtype=float32)
    """
    features = _as_features(features, name)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ReIDError(
            f"{name}: {zero.size} all-zero feature vector(s) (rows {zero[:5].tolist()}) "
            "cannot be L2-normalised; check the model's output."
        )
    return features / norms


def pairwise_distance(query, gallery, metric="euclidean", normalize=False):
    """Distances between every query and every gallery feature, as float32.

    Args:
        query: array (num_query, d).
        gallery: array (num_gallery, d).
        metric: "euclidean" (default), "sqeuclidean" (squared euclidean) or
            "cosine" (``1 - cos``, in [0, 2]).
        normalize: L2-normalise both sides first (default False). The EmbAE
            paper scores with normalised ``z_id``; on normalised features the
            three metrics give the same ranking.

    Returns:
        float32 array (num_query, num_gallery), every entry >= 0.

    Raises:
        ReIDError: on an unknown metric, non-2-D or empty inputs, different
            feature sizes, non-finite values, or all-zero vectors where a
            norm is divided by (cosine, ``normalize=True``).

    Example:
        >>> dist = pairwise_distance(query_features, gallery_features, normalize=True)
        >>> dist.shape
        (3368, 15913)
    """
    if metric not in METRICS:
        raise ReIDError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}.")
    query = _as_features(query, "query features")
    gallery = _as_features(gallery, "gallery features")
    if query.shape[1] != gallery.shape[1]:
        raise ReIDError(
            f"query and gallery features have different sizes: {query.shape} vs "
            f"{gallery.shape} (same model and same output expected)."
        )
    if normalize or metric == "cosine":
        query = l2_normalize(query, "query features")
        gallery = l2_normalize(gallery, "gallery features")

    out = np.empty((query.shape[0], gallery.shape[0]), dtype=np.float32)
    gallery_t = np.ascontiguousarray(gallery.T)
    if metric == "cosine":
        for start in range(0, query.shape[0], _CHUNK_ROWS):
            block = out[start : start + _CHUNK_ROWS]
            np.matmul(query[start : start + _CHUNK_ROWS], gallery_t, out=block)
            np.subtract(1.0, block, out=block)
            np.maximum(block, 0.0, out=block)
        return out

    q_sq = np.einsum("ij,ij->i", query, query)
    g_sq = np.einsum("ij,ij->i", gallery, gallery)
    for start in range(0, query.shape[0], _CHUNK_ROWS):
        block = out[start : start + _CHUNK_ROWS]
        np.matmul(query[start : start + _CHUNK_ROWS], gallery_t, out=block)
        block *= -2.0
        block += q_sq[start : start + _CHUNK_ROWS, None]
        block += g_sq[None, :]
        np.maximum(block, 0.0, out=block)
        if metric == "euclidean":
            np.sqrt(block, out=block)
    return out
