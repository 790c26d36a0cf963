import numpy as np
import pytest

from keras_reid.losses import CrossDomainTripletLoss, DomainAccuracy


def cross_domain_reference(pids, embeddings, margin, lam, reduction="mean", tl=False):
    """Normalise; per labelled anchor, hardest labelled positive vs hardest other-id image
    (target images included); mean (or sum) over labelled anchors; plus lam * |mean_s - mean_t|.
    tl: Zhong et al.'s form: every image an anchor, each target image its own identity,
    a target anchor's positive distance 0 (itself), its negatives every other image."""
    z = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    n = len(pids)
    labelled = [a for a in range(n) if pids[a] >= 0]
    hinges = []
    for a in range(n) if tl else labelled:
        if pids[a] >= 0:
            d_ap = [np.linalg.norm(z[a] - z[p]) for p in labelled if p != a and pids[p] == pids[a]]
            others = [x for x in range(n) if pids[x] != pids[a] or (tl and pids[x] < 0)]
        else:  # a target anchor (tl only)
            d_ap, others = [0.0], [x for x in range(n) if x != a]
        d_an = [np.linalg.norm(z[a] - z[x]) for x in others]
        hinges.append(max(margin + max(d_ap) - min(d_an), 0.0) if d_ap and d_an else 0.0)
    triplet = (np.mean(hinges) if reduction == "mean" else np.sum(hinges)) if hinges else 0.0
    target = [t for t in range(n) if pids[t] < 0]
    domain = 0.0
    if labelled and target:
        domain = np.linalg.norm(z[labelled].mean(axis=0) - z[target].mean(axis=0))
    return triplet + lam * domain


BATCHES = [
    np.array([0, 0, 1, 1, 2, 2, -1, -1, -1, -1]),  # P x K source + target
    np.array([3, -1, 3, 7, -1, 5, 5, 5, -1]),  # a labelled anchor without positive
    np.array([0, 0, 1, 1]),  # source only: no domain term
    np.array([-1, -1, -1]),  # target only: no anchors, no domain term
]


@pytest.mark.parametrize("margin, lam", [(0.3, 1.0), (0.0, 0.5), (1.5, 0.0)])
def test_matches_brute_force(margin, lam):
    rng = np.random.default_rng(0)
    for pids in BATCHES:
        embeddings = rng.normal(size=(len(pids), 6)).astype("float32")
        expected = cross_domain_reference(pids, embeddings, margin, lam)
        got = float(CrossDomainTripletLoss(margin, lam)(pids, embeddings))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction, tl", [("sum", False), ("mean", True), ("sum", True)])
def test_the_papers_sum_and_the_tl_baseline_match_brute_force(reduction, tl):
    rng = np.random.default_rng(1)
    for pids in BATCHES:
        embeddings = rng.normal(size=(len(pids), 6)).astype("float32")
        lam = 0.0 if tl else 1.0
        expected = cross_domain_reference(pids, embeddings, 0.3, lam, reduction, tl)
        loss = CrossDomainTripletLoss(0.3, lam, triplet_reduction=reduction, target_anchors=tl)
        np.testing.assert_allclose(float(loss(pids, embeddings)), expected, rtol=1e-5, atol=1e-5)


def test_tl_pushes_two_target_images_apart_and_cccdtl_does_not():
    # The mistake DIEN corrects: two target images of one person, side by side.
    angles = np.array([0.0, 1.0, 2.0, 2.01])
    embeddings = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype("float32")
    pids = np.array([0, 0, -1, -1])
    tl = CrossDomainTripletLoss(0.3, 0.0, target_anchors=True)
    cccdtl = CrossDomainTripletLoss(0.3, 0.0)
    # Both losses take the same source-anchor hinges (anchor 1's nearest negative is a
    # target image closer than its positive); TL adds the two target anchors, each
    # pushed from the other: [0.3 + 0 - 0.01]+ > 0.
    assert float(tl(pids, embeddings)) > float(cccdtl(pids, embeddings)) > 0


def test_target_image_is_a_negative_of_every_labelled_anchor():
    # Labelled pair at distance 0.1 rad apart, a target image right next to anchor 0:
    # it is the hardest negative of both anchors, which makes the hinge active.
    angles = np.array([0.0, 0.1, 0.01])
    embeddings = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype("float32")
    loss = CrossDomainTripletLoss(margin=0.0, lam=0.0)
    assert float(loss([0, 0, -1], embeddings)) > 0.0
    assert float(loss([0, 0, 1], embeddings)) > 0.0
    assert float(loss([0, 0, 0], embeddings)) == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"margin": -0.3}, "Received: margin=-0.3"),
        ({"lam": -1.0}, "Received: lam=-1.0"),
        ({"triplet_reduction": "max"}, "Received: triplet_reduction='max'"),
        ({"target_anchors": "yes"}, "Received: target_anchors='yes'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CrossDomainTripletLoss(**kwargs)


def test_domain_accuracy_counts_right_calls_over_the_epochs_batches():
    metric = DomainAccuracy()
    # Source rows (pid >= 0) are right below 0, target rows (-1) above it.
    metric.update_state(np.array([3, 5, -1, -1]), np.array([[-2.0], [0.5], [1.0], [-0.1]]))
    metric.update_state(np.array([0, -1]), np.array([[-1.0], [3.0]]))
    assert float(metric.result()) == pytest.approx(4 / 6)  # right: 3, -1(1.0), 0, -1(3.0)
    probabilities = DomainAccuracy(from_logits=False)
    probabilities.update_state(np.array([1, -1]), np.array([0.4, 0.6]))
    assert float(probabilities.result()) == 1.0
