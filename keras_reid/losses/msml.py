"""Margin sample mining loss (MSML): the batch's hardest pair against its hardest pair."""

import keras
from keras import ops

from keras_reid.losses.base import ReIDLoss
from keras_reid.losses.distance import (
    check_non_negative,
    flatten_pids,
    identity_masks,
    masked_max,
    masked_min,
    pairwise_distances,
)


@keras.saving.register_keras_serializable(package="keras_reid")
class MarginSampleMiningLoss(ReIDLoss):
    """MSML: ``max(max_pos D - min_neg D + margin, 0)`` over the whole batch.

    Where the batch-hard triplet loss mines per anchor, MSML mines once per
    batch: the largest distance between two images of the same id and the
    smallest distance between two images of different ids, wherever they are
    in the batch (the negative pair need not share an image with the positive
    pair). From Xiao, Luo & Zhang, "Margin Sample Mining Loss: A Deep Learning
    Based Method for Person Re-identification" (arXiv:1710.00478, 2017).

    The loss is one number per batch. ``call`` returns it repeated once per
    sample, so the default ``"sum_over_batch_size"`` reduction returns it
    unchanged (``sample_weight`` then weights copies of the same value). It is
    0 when the batch has no positive pair or no negative pair.

    Args:
        margin: non-negative float. Defaults to 0.3.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> MarginSampleMiningLoss(0.3)([0, 0, 1, 1], embeddings)
    """

    def __init__(
        self,
        margin=0.3,
        name="margin_sample_mining_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_non_negative("margin", margin)

    def call(self, y_true, y_pred):
        pids = flatten_pids(y_true)
        distances = pairwise_distances(y_pred)
        positive, negative = identity_masks(pids)
        hardest_positive = masked_max(distances, positive)
        hardest_negative = masked_min(distances, negative)
        loss = ops.relu(hardest_positive - hardest_negative + self.margin)
        has_pairs = ops.logical_and(ops.any(positive), ops.any(negative))
        loss = ops.where(has_pairs, loss, ops.zeros_like(loss))
        return loss * ops.ones_like(distances[:, 0])

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}
