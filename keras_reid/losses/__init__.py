"""Losses of the four papers, the loss registry, and in-batch monitoring metrics.

Every loss takes ``(y_true=pids, y_pred=outputs)`` on one replica's batch and is
registered serializable under the package "keras_reid". ``LOSSES`` maps config
names to loss classes; ``get_loss(name, **kwargs)`` builds one.
"""

from keras_reid.losses.attention import SelfAttentionConstraint
from keras_reid.losses.batch_stats import (
    ActiveTripletFraction,
    MeanNegativeDistance,
    MeanPositiveDistance,
)
from keras_reid.losses.classification import SoftmaxCrossEntropy
from keras_reid.losses.cross_domain import (
    CrossDomainTripletLoss,
    DomainAccuracy,
    DomainCrossEntropy,
)
from keras_reid.losses.distance import pairwise_distances
from keras_reid.losses.msml import MarginSampleMiningLoss
from keras_reid.losses.quadruplet import QuadrupletLoss
from keras_reid.losses.triplet import BatchHardTripletLoss, TripletLoss
from keras_reid.registry import Registry

# Filled here, in one table, rather than by decorators scattered over the modules.
LOSSES = Registry("loss")
LOSSES.register("batch_hard")(BatchHardTripletLoss)
LOSSES.register("triplet")(TripletLoss)
LOSSES.register("msml")(MarginSampleMiningLoss)
LOSSES.register("quadruplet")(QuadrupletLoss)
LOSSES.register("cross_domain")(CrossDomainTripletLoss)
LOSSES.register("domain")(DomainCrossEntropy)
LOSSES.register("softmax")(SoftmaxCrossEntropy)
LOSSES.register("sac")(SelfAttentionConstraint)


def get_loss(name, **kwargs):
    """The loss registered as ``name``, built with ``kwargs`` (a config's arguments).

    Unknown names and unknown arguments are ReIDErrors listing the valid ones.

    Example:
        >>> get_loss("batch_hard", margin=0.3)
    """
    return LOSSES.build(name, **kwargs)


__all__ = [
    "LOSSES",
    "ActiveTripletFraction",
    "BatchHardTripletLoss",
    "CrossDomainTripletLoss",
    "DomainAccuracy",
    "DomainCrossEntropy",
    "MarginSampleMiningLoss",
    "MeanNegativeDistance",
    "MeanPositiveDistance",
    "QuadrupletLoss",
    "SelfAttentionConstraint",
    "SoftmaxCrossEntropy",
    "TripletLoss",
    "get_loss",
    "pairwise_distances",
]
