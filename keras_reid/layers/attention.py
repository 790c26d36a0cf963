"""Spatial attention maps of a feature map, and the layer adding their consistency loss."""

import keras
from keras import ops

from keras_reid.losses.attention import attention_constraint, check_same_positions
from keras_reid.losses.distance import check_non_negative, l2_normalize


@keras.saving.register_keras_serializable(package="keras_reid")
class AttentionMap(keras.layers.Layer):
    """(B, H, W, C) features -> (B, H*W) attention: mean of squares over channels, L2-normalised.

    The activation-based spatial attention ``a = vec(mean_c F_c^2) / |vec(mean_c F_c^2)|``
    (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017,
    with p = 2), as used by the self-attention re-id paper on stages 4 to 6.
    Positions are flattened row-major (h * W + w). An all-zero feature map gives
    an all-zero attention map.

    Example:
        >>> AttentionMap()(np.ones((2, 16, 8, 64)))  # shape (2, 128), each row of norm 1
    """

    def call(self, inputs):
        energy = ops.mean(ops.square(inputs), axis=-1)
        energy = ops.reshape(energy, (ops.shape(energy)[0], -1))
        return l2_normalize(energy)

    def compute_output_shape(self, input_shape):
        batch, height, width = input_shape[:3]
        positions = None if height is None or width is None else height * width
        return (batch, positions)


@keras.saving.register_keras_serializable(package="keras_reid")
class AttentionConsistency(keras.layers.Layer):
    """Adds ``weight * attention_constraint(a4, a5, a6)`` to the model's losses.

    Takes the attention maps ``[a4, a5, a6]`` (each (B, N), from
    :class:`AttentionMap`) and returns them stacked, (B, 3, N), so the model can
    expose them as an output. The constraint (see
    :func:`keras_reid.losses.attention_constraint`) needs no labels, so it is
    added with ``add_loss`` and ``model.fit`` includes it in the total loss
    without a target for it. Maps with different N are rejected when the
    layer is built.

    Args:
        weight: non-negative factor of the constraint in the total loss.
            Defaults to 1.0.
        **kwargs: as for ``keras.layers.Layer``.

    Example:
        >>> maps = [AttentionMap()(f) for f in (stage4, stage5, stage6)]
        >>> attention = AttentionConsistency(weight=1.0, name="attention")(maps)
    """

    def __init__(self, weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = check_non_negative("weight", weight)

    def build(self, input_shape):
        check_same_positions(input_shape)

    def call(self, inputs):
        maps4, maps5, maps6 = inputs
        self.add_loss(self.weight * attention_constraint(maps4, maps5, maps6))
        return ops.stack([maps4, maps5, maps6], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 3, input_shape[0][-1])

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}
