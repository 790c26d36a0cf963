"""Spatial attention maps of feature maps (self-attention learning, SAL Sec. 3.2)."""

import keras
from keras import ops

from keras_reid.ops import l2_normalize


def _attention(features):
    """(B, H, W, C) -> (B, H*W): mean of squares over channels, L2-normalised (float32)."""
    energy = ops.mean(ops.square(ops.cast(features, "float32")), axis=-1)
    return l2_normalize(ops.reshape(energy, (ops.shape(energy)[0], -1)))


@keras.saving.register_keras_serializable(package="keras_reid")
class AttentionMap(keras.layers.Layer):
    """(B, H, W, C) features -> (B, H*W) attention: mean of squares over channels, L2-normalised.

    The activation-based spatial attention ``a = vec(mean_c F_c^2) / |vec(mean_c F_c^2)|``
    (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017,
    with p = 2), as used by the self-attention re-id paper on stages 4 to 6
    (SAL eq. 1). Positions are flattened row-major (h * W + w). An all-zero
    feature map gives an all-zero attention map.

    Example:
        >>> AttentionMap()(np.ones((2, 16, 8, 64)))  # shape (2, 128), each row of norm 1
    """

    def call(self, inputs):
        return _attention(inputs)

    def compute_output_shape(self, input_shape):
        batch, height, width = input_shape[:3]
        positions = None if height is None or width is None else height * width
        return (batch, positions)


@keras.saving.register_keras_serializable(package="keras_reid")
class MultiLevelAttention(keras.layers.Layer):
    """Feature maps of L levels at one resolution -> their attention maps, (B, L, H, W).

    Each level's map is :class:`AttentionMap`'s (mean over channels of the
    squared activations, unit L2 norm over the H*W positions), kept in its
    spatial shape so that it can be drawn over the image. The self-attention
    paper takes the last convolution outputs of stages 4, 5 and 6 of its
    dilated ResNet50 (SAL Sec. 3.2); its constraint between them (eq. 2) is
    the loss :class:`keras_reid.losses.SelfAttentionConstraint` on this output.
    The maps are computed in float32 whatever the compute dtype.

    Args:
        levels: optional names of the levels, in input order (e.g. "stage4",
            "stage5", "stage6"), kept for the ones who draw the maps
            (``keras-reid attention``). Default None: "level 1", "level 2", ...
        **kwargs: as for ``keras.layers.Layer``.

    Raises:
        ValueError: when built on maps whose heights and widths differ.

    Example:
        >>> MultiLevelAttention(("stage4", "stage5", "stage6"), name="attention")(
        ...     [stage4, stage5, stage6])  # (B, 3, H, W)
    """

    def __init__(self, levels=None, **kwargs):
        super().__init__(**kwargs)
        self.levels = None if levels is None else [str(level) for level in levels]

    def build(self, input_shape):
        if self.levels is not None and len(self.levels) != len(input_shape):
            raise ValueError(
                f"`levels` names {len(self.levels)} levels but the layer gets "
                f"{len(input_shape)} feature maps. Received: levels={self.levels}"
            )
        sizes = [tuple(shape[1:3]) for shape in input_shape]
        if len(set(sizes)) > 1:
            raise ValueError(
                "attention maps are compared position by position, so every level needs the "
                "same height and width (dilate the later stages instead of striding). "
                f"Received: feature maps of shapes {', '.join(str(tuple(s)) for s in input_shape)}"
            )

    def call(self, inputs):
        height, width = ops.shape(inputs[0])[1], ops.shape(inputs[0])[2]
        maps = [_attention(features) for features in inputs]
        return ops.reshape(ops.stack(maps, axis=1), (-1, len(inputs), height, width))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(input_shape), *input_shape[0][1:3])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape([x.shape for x in inputs]), "float32")

    def level_names(self, count):
        """The levels' names: ``levels``, or "level 1".."level <count>"."""
        return self.levels or [f"level {index + 1}" for index in range(count)]

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}
