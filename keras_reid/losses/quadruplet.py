"""Quadruplet loss: a triplet term plus a term between two other identities."""

import keras
from keras import ops

from keras_reid.losses.base import ReIDLoss
from keras_reid.losses.distance import (
    check_non_negative,
    flatten_pids,
    identity_masks,
    masked_argmin,
    masked_max,
    masked_min,
    pairwise_distances,
)

MINING_MODES = ("hard", "all")


@keras.saving.register_keras_serializable(package="keras_reid")
class QuadrupletLoss(ReIDLoss):
    """Quadruplet loss with hard mining or over all valid quadruplets of the batch.

    The quadruplet loss of Chen, Chen, Zhang & Huang, "Beyond triplet loss: a
    deep quadruplet network for person re-identification" (CVPR 2017) adds to
    the triplet term ``[D(i, j) - D(i, k) + m1]+`` a second term
    ``[D(i, j) - D(l, k) + m2]+`` whose negative pair ``(l, k)`` does not
    contain the anchor, pushing identities apart everywhere, not only around
    the anchor. Distances here are Euclidean (Chen et al. learn a metric).

    ``mining="hard"`` (the self-attention paper's quadruplet-hard loss): for
    anchor ``i``, ``j`` is its hardest positive,
    ``k`` its hardest negative, and ``h`` the sample nearest to ``k`` whose id
    differs from both ``pid_k`` and ``pid_i``:

        loss_i = [D(i, j) - D(i, k) + m1]+ + [D(i, j) - D(k, h) + m2]+

    ``mining="all"``: for anchor ``i``, the mean of the first term over all
    ``(j, k)`` with ``pid_j = pid_i``, ``j != i``, ``pid_k != pid_i``, plus the
    mean of the second term over all ordered ``(j, k, l)`` with ``j`` as before
    and ``pid_k != pid_i``, ``pid_l != pid_i``, ``pid_l != pid_k`` (Chen et
    al.'s constraints ``s_i = s_j``, ``s_l != s_k``, ``s_l != s_i``,
    ``s_k != s_i``). The two means are taken separately, so each term is
    comparable to its hard-mined counterpart. This is the MSML paper's "Quad"
    row (Xiao et al. 2017, Table 1), whose quadruplets are sampled at random,
    not mined: the mean over all of them is that sampling's expectation.

    One value per anchor; the default reduction averages over anchors. A term
    without a valid triplet or quadruplet for that anchor (no positive, no
    negative, or fewer than three ids in the batch for the second term) is 0.

    Args:
        margin1: non-negative margin of the triplet term. Defaults to 0.3
            (the MSML paper; the self-attention paper uses 0.5).
        margin2: non-negative margin of the inter-identity term. Defaults to 0.2.
        mining: "hard" (default) or "all".
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> QuadrupletLoss(0.5, 0.2, mining="hard")([0, 0, 1, 1, 2, 2], embeddings)
    """

    def __init__(
        self,
        margin1=0.3,
        margin2=0.2,
        mining="hard",
        name="quadruplet_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin1 = check_non_negative("margin1", margin1)
        self.margin2 = check_non_negative("margin2", margin2)
        if mining not in MINING_MODES:
            raise ValueError(
                f"`mining` must be one of {', '.join(map(repr, MINING_MODES))}. "
                f"Received: mining={mining!r}"
            )
        self.mining = mining

    def call(self, y_true, y_pred):
        pids = flatten_pids(y_true)
        distances = pairwise_distances(y_pred)
        positive, negative = identity_masks(pids)
        if self.mining == "hard":
            return self._hard(pids, distances, positive, negative)
        return self._all(distances, positive, negative)

    def _hard(self, pids, distances, positive, negative):
        d_ij = masked_max(distances, positive, axis=1)
        d_ik = masked_min(distances, negative, axis=1)
        k = masked_argmin(distances, negative, axis=1)
        # Row k of D and pid_k, gathered per anchor, to mine h next to each anchor's k.
        distances_from_k = ops.take(distances, k, axis=0)
        pids_k = ops.take(pids, k, axis=0)
        other_ids = ops.logical_and(ops.not_equal(pids[None, :], pids_k[:, None]), negative)
        d_kh = masked_min(distances_from_k, other_ids, axis=1)

        has_triplet = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
        has_quadruplet = ops.logical_and(has_triplet, ops.any(other_ids, axis=1))
        zeros = ops.zeros_like(d_ij)
        triplet_term = ops.where(has_triplet, ops.relu(d_ij - d_ik + self.margin1), zeros)
        pair_term = ops.where(has_quadruplet, ops.relu(d_ij - d_kh + self.margin2), zeros)
        return triplet_term + pair_term

    def _all(self, distances, positive, negative):
        dtype = distances.dtype
        # First term, tensor indexed [i, j, k].
        hinges = ops.relu(distances[:, :, None] - distances[:, None, :] + self.margin1)
        valid = ops.cast(ops.logical_and(positive[:, :, None], negative[:, None, :]), dtype)
        triplet_term = ops.sum(hinges * valid, axis=(1, 2)) / ops.maximum(
            ops.sum(valid, axis=(1, 2)), 1.0
        )

        # Second term, tensor indexed [j, k, l] for one anchor at a time: all anchors
        # at once would take B^4 memory (1 GB of float32 at B = 128), one anchor B^3.
        def per_anchor(row):
            d_i, positive_i, negative_i = row
            pairs = ops.logical_and(
                ops.logical_and(negative_i[:, None], negative_i[None, :]), negative
            )
            hinges = ops.relu(d_i[:, None, None] - distances[None, :, :] + self.margin2)
            valid = ops.cast(ops.logical_and(positive_i[:, None, None], pairs[None]), dtype)
            return ops.sum(hinges * valid) / ops.maximum(ops.sum(valid), 1.0)

        pair_term = ops.map(per_anchor, (distances, positive, negative))
        return triplet_term + pair_term

    def get_config(self):
        return {
            **super().get_config(),
            "margin1": self.margin1,
            "margin2": self.margin2,
            "mining": self.mining,
        }
