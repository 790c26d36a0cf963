"""The self-attention paper's constraint between the attention maps of stages 4-6 (SAL eq. 2)."""

import keras
from keras import ops

from keras_reid.losses.base import ReIDLoss


@keras.saving.register_keras_serializable(package="keras_reid")
class SelfAttentionConstraint(ReIDLoss):
    """``sum_l |a_last - a_l|^2`` over the earlier levels, per sample: SAL eq. (2).

    ``L_sac = |att_s6 - att_s5|^2 + |att_s6 - att_s4|^2`` pulls the attention
    maps of stages 4 and 5 towards the map of the last stage 6, so that the
    levels whose features are concatenated attend to the same body regions
    (self-attention learning, Sec. 3.2). ``y_pred`` is the (B, L, H, W) output
    of :class:`keras_reid.layers.MultiLevelAttention` (or (B, L, N)); the
    last level is the reference. ``y_true`` (the labels every output gets in
    a recipe) is not used. One value per sample; the default reduction
    averages over the batch. In a recipe it is an ordinary entry of the
    ``losses`` section, with its weight (the paper's is 1):
    ``attention: {name: sac, weight: 1.0}``.

    Args:
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> SelfAttentionConstraint()(pids, model(images)["attention"])
    """

    def __init__(
        self, name="self_attention_constraint", reduction="sum_over_batch_size", dtype=None
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        maps = ops.convert_to_tensor(y_pred)
        if len(maps.shape) < 3 or maps.shape[1] is None or maps.shape[1] < 2:
            raise ValueError(
                "the self-attention constraint needs attention maps of at least two levels, "
                f"(B, L, H, W) or (B, L, N) with L >= 2. Received: y_pred with shape {maps.shape}"
            )
        maps = ops.reshape(maps, (ops.shape(maps)[0], maps.shape[1], -1))
        reference = maps[:, -1:, :]
        return ops.sum(ops.square(reference - maps[:, :-1, :]), axis=(1, 2))
