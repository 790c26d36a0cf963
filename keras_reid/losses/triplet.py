"""Triplet losses: batch-hard (Hermans et al. 2017) and all valid triplets of a batch."""

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
class BatchHardTripletLoss(ReIDLoss):
    """Batch-hard triplet loss: each anchor against its hardest positive and negative.

    For anchor ``a`` of the batch, with Euclidean distances ``D`` between embeddings,

        d_ap = max_{p: pid_p = pid_a, p != a} D[a, p]
        d_an = min_{n: pid_n != pid_a} D[a, n]
        loss_a = softplus(d_ap - d_an)          if margin == "soft"
        loss_a = max(margin + d_ap - d_an, 0)   if margin is a number

    From Hermans, Beyer & Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification" (arXiv:1703.07737, 2017): the batch-hard loss L_BH and its
    soft-margin variant, which replaces the hinge by ``ln(1 + exp(x))``. The soft
    margin is also the embedding loss of the EmbAE paper.

    ``call`` returns one value per anchor, so the default ``"sum_over_batch_size"``
    reduction gives the mean over anchors. An anchor with no positive or no
    negative in the batch has no triplet: its value is 0, and it still counts in
    that mean. P x K batches (K >= 2) give every anchor both.

    Args:
        margin: "soft" (default) or a non-negative float for the hinge.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> loss = BatchHardTripletLoss(margin=0.3)
        >>> loss(np.array([0, 0, 1, 1]), np.random.rand(4, 8).astype("float32"))

    y_true: integer person ids, shape (B,) or (B, 1). y_pred: embeddings (B, D).
    """

    def __init__(
        self,
        margin="soft",
        name="batch_hard_triplet_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_non_negative("margin", margin, allow_soft=True)

    def call(self, y_true, y_pred):
        pids = flatten_pids(y_true)
        distances = pairwise_distances(y_pred)
        positive, negative = identity_masks(pids)
        d_ap = masked_max(distances, positive, axis=1)
        d_an = masked_min(distances, negative, axis=1)
        if self.margin == "soft":
            losses = ops.softplus(d_ap - d_an)
        else:
            losses = ops.relu(self.margin + d_ap - d_an)
        has_triplet = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
        return ops.where(has_triplet, losses, ops.zeros_like(losses))

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


@keras.saving.register_keras_serializable(package="keras_reid")
class TripletLoss(ReIDLoss):
    """Hinge triplet loss over every valid triplet of the batch ("batch all").

    A triplet ``(a, p, n)`` is valid when ``pid_p = pid_a``, ``p != a`` and
    ``pid_n != pid_a``. Each anchor's value is the mean, over its valid triplets,
    of ``max(margin + D[a, p] - D[a, n], 0)`` (inactive triplets included, as
    zeros); the default reduction then averages over anchors, and an anchor
    without a valid triplet contributes 0. In a P x K batch every anchor has the
    same number of triplets, (K - 1)(B - K), so this equals the plain mean over
    all valid triplets of the batch.

    This is the "Tri" baseline of Xiao, Luo & Zhang, "Margin Sample Mining Loss:
    A Deep Learning Based Method for Person Re-identification" (arXiv:1710.00478,
    2017), with the triplets taken from the batch rather than sampled.

    It builds a (B, B, B) tensor: fine for B up to a few hundred.

    Args:
        margin: non-negative float. Defaults to 0.3.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> TripletLoss(margin=0.3)(np.array([0, 0, 1, 1]), np.random.rand(4, 8))
    """

    def __init__(
        self, margin=0.3, name="triplet_loss", reduction="sum_over_batch_size", dtype=None
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_non_negative("margin", margin)

    def call(self, y_true, y_pred):
        pids = flatten_pids(y_true)
        distances = pairwise_distances(y_pred)
        positive, negative = identity_masks(pids)
        # triplets[a, p, n] = margin + D[a, p] - D[a, n]
        hinges = ops.relu(self.margin + distances[:, :, None] - distances[:, None, :])
        valid = ops.logical_and(positive[:, :, None], negative[:, None, :])
        valid = ops.cast(valid, hinges.dtype)
        count = ops.sum(valid, axis=(1, 2))
        return ops.sum(hinges * valid, axis=(1, 2)) / ops.maximum(count, 1.0)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}
