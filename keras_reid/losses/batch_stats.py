"""In-batch monitoring metrics for metric-learning training logs.

Metrics, not extra loss outputs: pass them to ``compile(metrics={"embedding": [...]})``
and they show up in the training logs, averaged over the epoch's batches.
Images with a negative pid (unlabelled target images) are left out.
"""

import keras
from keras import ops

from keras_reid.losses.distance import (
    check_non_negative,
    flatten_pids,
    identity_masks,
    masked_max,
    masked_min,
    pairwise_distances,
)


class _BatchPairMetric(keras.metrics.Metric):
    """Running ratio total / count of a per-batch (total, count) pair; ignores sample_weight."""

    def __init__(self, name, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        pids = flatten_pids(y_true)
        labelled = ops.greater_equal(pids, 0)
        both_labelled = ops.logical_and(labelled[:, None], labelled[None, :])
        distances = pairwise_distances(ops.cast(y_pred, self.dtype))
        positive, negative = identity_masks(pids)
        total, count = self.batch_total_and_count(
            distances,
            ops.logical_and(positive, both_labelled),
            ops.logical_and(negative, both_labelled),
        )
        self.total.assign_add(ops.cast(total, self.dtype))
        self.count.assign_add(ops.cast(count, self.dtype))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)


@keras.saving.register_keras_serializable(package="keras_reid")
class MeanPositiveDistance(_BatchPairMetric):
    """Mean Euclidean distance over all positive pairs (same pid, two images) of the batches.

    Example:
        >>> model.compile(..., metrics={"embedding": [MeanPositiveDistance()]})
    """

    def __init__(self, name="mean_positive_distance", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def batch_total_and_count(self, distances, positive, negative):
        mask = ops.cast(positive, distances.dtype)
        return ops.sum(distances * mask), ops.sum(mask)


@keras.saving.register_keras_serializable(package="keras_reid")
class MeanNegativeDistance(_BatchPairMetric):
    """Mean Euclidean distance over all negative pairs (different pids) of the batches.

    Example:
        >>> model.compile(..., metrics={"embedding": [MeanNegativeDistance()]})
    """

    def __init__(self, name="mean_negative_distance", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def batch_total_and_count(self, distances, positive, negative):
        mask = ops.cast(negative, distances.dtype)
        return ops.sum(distances * mask), ops.sum(mask)


@keras.saving.register_keras_serializable(package="keras_reid")
class ActiveTripletFraction(_BatchPairMetric):
    """Fraction of anchors whose batch-hard triplet still produces a gradient.

    Per anchor with a positive and a negative in the batch, ``d_ap`` is the
    hardest positive and ``d_an`` the hardest negative distance (as in
    :class:`BatchHardTripletLoss`). The triplet is active when
    ``margin + d_ap - d_an > 0`` for a numeric margin. The soft margin's
    softplus is never exactly 0, so for ``margin="soft"`` an anchor counts as
    active when its triplet is violated, ``d_ap > d_an`` (the same rule as
    margin 0). Anchors without a triplet are not counted.

    Args:
        margin: "soft" (default) or a non-negative float: the margin of the loss
            being monitored.

    Example:
        >>> model.compile(..., metrics={"embedding": [ActiveTripletFraction(0.3)]})
    """

    def __init__(self, margin="soft", name="active_triplet_fraction", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.margin = check_non_negative("margin", margin, allow_soft=True)

    def batch_total_and_count(self, distances, positive, negative):
        margin = 0.0 if self.margin == "soft" else self.margin
        d_ap = masked_max(distances, positive, axis=1)
        d_an = masked_min(distances, negative, axis=1)
        has_triplet = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
        active = ops.logical_and(has_triplet, ops.greater(margin + d_ap - d_an, 0.0))
        return ops.sum(ops.cast(active, distances.dtype)), ops.sum(
            ops.cast(has_triplet, distances.dtype)
        )

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}
