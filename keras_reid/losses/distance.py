"""Pairwise distances, identity masks and argument checks shared by the metric losses.

Every batch-mining loss starts from the same three things: the (B, B) matrix of
Euclidean distances between the embeddings of one batch, the masks saying which
pairs share an identity, and the per-anchor hardest positive and negative.
"""

from keras import ops

from keras_reid.checks import check_non_negative  # noqa: F401 (the losses' import)
from keras_reid.ops import SQUARED_DISTANCE_EPSILON, l2_normalize  # noqa: F401


def safe_sqrt(x, epsilon=SQUARED_DISTANCE_EPSILON):
    """``sqrt(x)`` that is 0, with a zero gradient, where ``x <= epsilon``.

    The derivative of sqrt is infinite at 0, and ``ops.where`` back-propagates
    ``0 * inf = nan`` into the branch it discards; so the discarded entries are
    replaced by 1 before the square root is taken.
    """
    # "not <=" rather than ">": a NaN entry is kept, so that NaN reaches the
    # loss (and the NaN stop) instead of becoming a distance of 0.
    keep = ops.logical_not(ops.less_equal(x, epsilon))
    root = ops.sqrt(ops.where(keep, x, ops.ones_like(x)))
    return ops.where(keep, root, ops.zeros_like(x))


def pairwise_distances(embeddings, squared=False):
    """The (B, B) Euclidean distances between the rows of ``embeddings`` (B, D).

    Computed from the Gram matrix, ``|a|^2 - 2 a.b + |b|^2``, which needs B x B
    memory instead of the B x B x D of explicit differences. Round-off can make
    that expression slightly negative, so it is clipped at 0, and the diagonal is
    set to exactly 0; a NaN or infinite embedding gives NaN distances (never 0).
    The square root is :func:`safe_sqrt`, so identical embeddings give a
    distance of 0 and finite gradients.

    Args:
        embeddings: float tensor (B, D).
        squared: return squared distances instead. Defaults to False.

    Example:
        >>> pairwise_distances(np.array([[0.0, 0.0], [3.0, 4.0]]))  # [[0, 5], [5, 0]]
    """
    embeddings = ops.convert_to_tensor(embeddings)
    squared_norms = ops.sum(ops.square(embeddings), axis=1)
    gram = ops.matmul(embeddings, ops.transpose(embeddings))
    squared_distances = squared_norms[:, None] - 2.0 * gram + squared_norms[None, :]
    # Clip round-off below 0 but let NaN through: a diverged embedding must
    # give a NaN loss, not distances of 0 and a plausible-looking loss.
    squared_distances = ops.where(
        ops.less(squared_distances, 0.0), ops.zeros_like(squared_distances), squared_distances
    )
    squared_distances = ops.where(
        self_pair_mask(squared_norms), ops.zeros_like(squared_distances), squared_distances
    )
    return squared_distances if squared else safe_sqrt(squared_distances)


def flatten_pids(pids):
    """Person ids of shape (B,) or (B, 1), of any numeric dtype, as an int32 (B,) tensor.

    Keras' ``Loss.__call__`` casts ``y_true`` to the loss dtype (float), which
    represents every id below 2**24 exactly, so the cast back to int is lossless.
    """
    return ops.reshape(ops.cast(pids, "int32"), (-1,))


def self_pair_mask(vector):
    """The (B, B) boolean identity matrix, sized from a (B,) tensor (B may be dynamic)."""
    index = ops.arange(ops.shape(vector)[0])
    return ops.equal(index[:, None], index[None, :])


def identity_masks(pids):
    """``(positive, negative)`` boolean (B, B) masks for integer ``pids`` (B,).

    ``positive[i, j]``: same id and ``i != j``; ``negative[i, j]``: different ids.
    """
    same = ops.equal(pids[:, None], pids[None, :])
    positive = ops.logical_and(same, ops.logical_not(self_pair_mask(pids)))
    return positive, ops.logical_not(same)


def masked_max(values, mask, axis=None):
    """Max of ``values >= 0`` over the entries where ``mask`` holds; 0 where none does."""
    return ops.max(ops.where(mask, values, ops.zeros_like(values)), axis=axis)


def masked_min(values, mask, axis=None):
    """Min of ``values >= 0`` over the entries where ``mask`` holds.

    Masked-out entries are replaced by a value larger than every entry, so they
    never win; where nothing is selected that value is returned, and callers
    must zero those rows out (with :func:`ops.where`, which passes no gradient).
    """
    return ops.min(ops.where(mask, values, _above_all(values)), axis=axis)


def masked_argmin(values, mask, axis=-1):
    """Index of the smallest selected entry along ``axis`` (arbitrary where none is)."""
    return ops.argmin(ops.where(mask, values, _above_all(values)), axis=axis)


def _above_all(values):
    return ops.stop_gradient(ops.max(values) + 1.0)
