"""DIEN's cross-domain triplet loss: labelled anchors, negatives from both domains."""

import keras
from keras import ops

from keras_reid.losses.base import ReIDLoss
from keras_reid.losses.distance import (
    check_non_negative,
    flatten_pids,
    l2_normalize,
    masked_max,
    masked_min,
    pairwise_distances,
    safe_sqrt,
    self_pair_mask,
)


@keras.saving.register_keras_serializable(package="keras_reid")
class CrossDomainTripletLoss(ReIDLoss):
    """Batch-hard triplet loss across a source and a target domain, plus mean alignment.

    The batch mixes labelled source images (pid >= 0) with unlabelled target
    images (pid -1). Embeddings are L2-normalised first. Then:

    - anchors and positives are labelled images only (positive: same pid,
      another image);
    - negatives of an anchor are every image with another pid, so every
      target image is a negative of every labelled anchor (target images are
      assumed to show people absent from the source set);
    - each labelled anchor ``a`` takes its hardest positive and hardest
      negative, ``[margin + max_p D(a, p) - min_n D(a, n)]+``, and the term is
      the mean over labelled anchors (0 for an anchor without a positive), or
      their sum with ``triplet_reduction="sum"``, as DIEN's eq. (2) writes it
      (the sum weighs the triplet term against the domain term by the
      number of source images in the batch);
    - a domain term ``lam * |mean source embedding - mean target embedding|``
      (Euclidean, on the normalised embeddings; 0 when the batch lacks either
      domain) pulls the two domains' feature distributions together.

    The cross-domain triplet loss of DIEN (its "CCCDTL" term), with the batch-hard
    mining of Hermans et al. (arXiv:1703.07737).

    ``target_anchors=True`` (with ``lam=0``) is the "TL" baseline of DIEN's
    Table I, the cross-domain triplet loss of Zhong et al. that DIEN corrects:
    every target image is its own identity and an anchor too. A target
    anchor has no other image of its identity, so its positive distance is 0
    (the anchor itself), and its hinge ``[margin - min_n D(a, n)]+`` pushes
    its nearest image away, even another image of the same unknown person.
    The mean is then over all anchors, source and target.

    The loss is one number per batch (the domain term has no per-sample form,
    and target images are not anchors), so ``call`` returns it repeated once
    per sample and the default ``"sum_over_batch_size"`` reduction returns it
    unchanged.

    Args:
        margin: non-negative float. Defaults to 0.3.
        lam: non-negative weight of the domain term. Defaults to 1.0.
        triplet_reduction: "mean" (default) or "sum" over the anchors.
        target_anchors: False (default: source anchors only, DIEN) or True
            (every image an anchor, targets their own identities: the TL baseline).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> CrossDomainTripletLoss(0.3, lam=1.0)([0, 0, 1, 1, -1, -1], embeddings)
    """

    def __init__(
        self,
        margin=0.3,
        lam=1.0,
        triplet_reduction="mean",
        target_anchors=False,
        name="cross_domain_triplet_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_non_negative("margin", margin)
        self.lam = check_non_negative("lam", lam)
        if triplet_reduction not in ("mean", "sum"):
            raise ValueError(
                "`triplet_reduction` must be 'mean' or 'sum'. "
                f"Received: triplet_reduction={triplet_reduction!r}"
            )
        if not isinstance(target_anchors, bool):
            raise ValueError(
                "`target_anchors` must be True or False. "
                f"Received: target_anchors={target_anchors!r}"
            )
        self.triplet_reduction = triplet_reduction
        self.target_anchors = target_anchors

    def call(self, y_true, y_pred):
        pids = flatten_pids(y_true)
        embeddings = l2_normalize(y_pred)
        distances = pairwise_distances(embeddings)
        dtype = distances.dtype

        labelled = ops.greater_equal(pids, 0)
        source = ops.cast(labelled, dtype)
        target = 1.0 - source
        if self.target_anchors:
            # Each target image its own identity (-1 - its row: no two alike), all anchors.
            identities = ops.where(labelled, pids, -1 - ops.arange(ops.shape(pids)[0]))
            anchor = ops.ones_like(labelled)[:, None]
        else:
            identities, anchor = pids, labelled[:, None]
        same = ops.equal(identities[:, None], identities[None, :])
        positive = ops.logical_and(
            ops.logical_and(anchor, same), ops.logical_not(self_pair_mask(pids))
        )
        negative = ops.logical_and(anchor, ops.logical_not(same))
        hinges = ops.relu(
            self.margin
            + masked_max(distances, positive, axis=1)  # 0 without a positive
            - masked_min(distances, negative, axis=1)
        )
        has_positive = ops.any(positive, axis=1)
        if self.target_anchors:  # a target anchor's positive is itself, at distance 0
            has_positive = ops.logical_or(has_positive, ops.logical_not(labelled))
        has_triplet = ops.logical_and(has_positive, ops.any(negative, axis=1))
        hinges = ops.where(has_triplet, hinges, ops.zeros_like(hinges))
        anchors = ops.cast(ops.shape(pids)[0], dtype) if self.target_anchors else ops.sum(source)
        triplet_term = ops.sum(hinges)
        if self.triplet_reduction == "mean":
            triplet_term = triplet_term / ops.maximum(anchors, 1.0)

        source_mean = ops.sum(embeddings * source[:, None], axis=0) / ops.maximum(
            ops.sum(source), 1.0
        )
        target_mean = ops.sum(embeddings * target[:, None], axis=0) / ops.maximum(
            ops.sum(target), 1.0
        )
        domain_term = safe_sqrt(ops.sum(ops.square(source_mean - target_mean)))
        both_domains = ops.logical_and(ops.any(labelled), ops.logical_not(ops.all(labelled)))
        domain_term = ops.where(both_domains, domain_term, ops.zeros_like(domain_term))

        return (triplet_term + self.lam * domain_term) * ops.ones_like(source)

    def get_config(self):
        return {
            **super().get_config(),
            "margin": self.margin,
            "lam": self.lam,
            "triplet_reduction": self.triplet_reduction,
            "target_anchors": self.target_anchors,
        }


@keras.saving.register_keras_serializable(package="keras_reid")
class DomainCrossEntropy(ReIDLoss):
    """Binary cross-entropy of a domain classifier: target images 1, source images 0.

    DIEN's L_DC (eq. 3), averaged over the whole batch. The domain of a row is
    read from the batch's labels, as every loss gets them: a label >= 0 is a
    labelled source image (domain 0), -1 an unlabelled target image (domain
    1), the contract of :func:`keras_reid.data.cross_domain_batches`.
    ``y_pred`` is the classifier's one logit per image, ``(B, 1)`` or ``(B,)``
    (``from_logits=False``: a probability).

    Put a :class:`keras_reid.layers.GradientReversal` between the features and
    the classifier: the classifier then learns to tell the domains apart while
    the features learn to make that impossible (without it they would become
    more domain-specific; the recipe refuses such a model).

    Args:
        from_logits: whether ``y_pred`` is a logit (default) or a probability.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> DomainCrossEntropy()([3, 5, -1], [[0.0], [0.0], [0.0]])  # ln 2
    """

    def __init__(
        self,
        from_logits=True,
        name="domain_cross_entropy",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        target = ops.cast(ops.less(flatten_pids(y_true), 0), y_pred.dtype)
        values = ops.reshape(y_pred, (-1,))
        return keras.losses.binary_crossentropy(
            target[:, None], values[:, None], from_logits=self.from_logits
        )

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="keras_reid")
class DomainAccuracy(keras.metrics.Metric):
    """How often a domain classifier tells the image's domain: the fraction it gets right.

    The metric beside :class:`DomainCrossEntropy`, with the same contract: a
    label >= 0 is a source image (domain 0), -1 a target image (domain 1);
    ``y_pred`` is one logit per image (``from_logits=False``: a probability),
    and a logit above 0 says "target". Averaged over every image of the
    epoch's batches. Near 0.5 (with balanced batches) the classifier can no
    longer tell the domains apart, which is what the gradient reversal aims
    for; near 1 the features still carry the domain.

    Example:
        >>> model.compile(..., metrics={"domain": [DomainAccuracy()]})
    """

    def __init__(self, from_logits=True, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        target = ops.less(flatten_pids(y_true), 0)
        values = ops.reshape(ops.cast(y_pred, self.dtype), (-1,))
        said_target = ops.greater(values, 0.0 if self.from_logits else 0.5)
        right = ops.cast(ops.equal(said_target, target), self.dtype)
        self.correct.assign_add(ops.sum(right))
        self.count.assign_add(ops.cast(ops.shape(right)[0], self.dtype))

    def result(self):
        return ops.divide_no_nan(self.correct, self.count)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}
