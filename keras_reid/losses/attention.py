"""The self-attention paper's consistency constraint between attention maps of stages 4-6."""

from keras import ops


def attention_constraint(maps4, maps5, maps6):
    """Mean over the batch of ``|a6 - a5|^2 + |a6 - a4|^2``.

    The attention constraint of the self-attention re-id paper: the attention
    maps of stages 4 and 5 are pulled towards the map of the last stage 6, so
    that the earlier stages attend to the same body regions. The maps are the
    (B, H*W) outputs of :class:`keras_reid.layers.AttentionMap`; they must have
    the same number of positions, which holds for the paper's dilated network
    (stages 4 to 6 keep one resolution). For use inside ``model.fit`` see
    :class:`keras_reid.layers.AttentionConsistency`.

    Args:
        maps4, maps5, maps6: float tensors (B, N), one per stage.

    Returns:
        A scalar tensor.

    Example:
        >>> a4, a5, a6 = (AttentionMap()(f) for f in (stage4, stage5, stage6))
        >>> attention_constraint(a4, a5, a6)
    """
    maps4, maps5, maps6 = (ops.convert_to_tensor(m) for m in (maps4, maps5, maps6))
    check_same_positions([maps4.shape, maps5.shape, maps6.shape])
    per_sample = ops.sum(ops.square(maps6 - maps5), axis=-1) + ops.sum(
        ops.square(maps6 - maps4), axis=-1
    )
    return ops.mean(per_sample)


def check_same_positions(shapes):
    """Raise a ValueError unless the (B, N) map shapes agree on N (where it is known)."""
    positions = [tuple(shape)[-1] for shape in shapes]
    known = {n for n in positions if n is not None}
    if len(known) > 1:
        raise ValueError(
            "The attention constraint compares maps position by position, so stages 4, 5 "
            "and 6 must have the same number of positions H*W (the self-attention paper's "
            "dilated network keeps them at one resolution; use dilation instead of stride, "
            f"or resize the maps). Received: maps4, maps5, maps6 with shapes "
            f"{', '.join(str(tuple(s)) for s in shapes)}"
        )
