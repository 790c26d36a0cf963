"""Tensor helpers that layers and losses share (neither imports the other for them)."""

from keras import ops

# Below this squared distance two embeddings count as coincident: the distance is
# reported as exactly 0 and its gradient as 0 instead of sqrt'(0) = inf.
SQUARED_DISTANCE_EPSILON = 1e-12


def l2_normalize(x, axis=-1, epsilon=SQUARED_DISTANCE_EPSILON):
    """``x / |x|`` along ``axis``; an all-zero vector stays zero, with finite gradients."""
    squared_norm = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared_norm, epsilon))
