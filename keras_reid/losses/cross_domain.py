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
      the mean over labelled anchors (0 for an anchor without a positive);
    - a domain term ``lam * |mean source embedding - mean target embedding|``
      (Euclidean, on the normalised embeddings; 0 when the batch lacks either
      domain) pulls the two domains' feature distributions together.

    The cross-domain triplet loss of DIEN (its "CCCDTL" term), with the batch-hard
    mining of Hermans et al. (arXiv:1703.07737).

    The loss is one number per batch (the domain term has no per-sample form,
    and target images are not anchors), so ``call`` returns it repeated once
    per sample and the default ``"sum_over_batch_size"`` reduction returns it
    unchanged.

    Args:
        margin: non-negative float. Defaults to 0.3.
        lam: non-negative weight of the domain term. Defaults to 1.0.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> CrossDomainTripletLoss(0.3, lam=1.0)([0, 0, 1, 1, -1, -1], embeddings)
    """

    def __init__(
        self,
        margin=0.3,
        lam=1.0,
        name="cross_domain_triplet_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_non_negative("margin", margin)
        self.lam = check_non_negative("lam", lam)

    def call(self, y_true, y_pred):
        pids = flatten_pids(y_true)
        embeddings = l2_normalize(y_pred)
        distances = pairwise_distances(embeddings)
        dtype = distances.dtype

        labelled = ops.greater_equal(pids, 0)
        same = ops.equal(pids[:, None], pids[None, :])
        anchor = labelled[:, None]
        positive = ops.logical_and(
            ops.logical_and(anchor, same), ops.logical_not(self_pair_mask(pids))
        )
        negative = ops.logical_and(anchor, ops.logical_not(same))
        hinges = ops.relu(
            self.margin
            + masked_max(distances, positive, axis=1)
            - masked_min(distances, negative, axis=1)
        )
        has_triplet = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
        hinges = ops.where(has_triplet, hinges, ops.zeros_like(hinges))
        source = ops.cast(labelled, dtype)
        target = 1.0 - source
        triplet_term = ops.sum(hinges) / ops.maximum(ops.sum(source), 1.0)

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
        return {**super().get_config(), "margin": self.margin, "lam": self.lam}
