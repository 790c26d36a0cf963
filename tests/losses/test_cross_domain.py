import numpy as np
import pytest

from keras_reid.losses import CrossDomainTripletLoss


def cross_domain_reference(pids, embeddings, margin, lam):
    """Normalise; per labelled anchor, hardest labelled positive vs hardest other-id image
    (target images included); mean over labelled anchors; plus lam * |mean_s - mean_t|."""
    z = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    n = len(pids)
    labelled = [a for a in range(n) if pids[a] >= 0]
    hinges = []
    for a in labelled:
        d_ap = [np.linalg.norm(z[a] - z[p]) for p in labelled if p != a and pids[p] == pids[a]]
        d_an = [np.linalg.norm(z[a] - z[x]) for x in range(n) if pids[x] != pids[a]]
        hinges.append(max(margin + max(d_ap) - min(d_an), 0.0) if d_ap and d_an else 0.0)
    triplet = np.mean(hinges) if hinges else 0.0
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
    [({"margin": -0.3}, "Received: margin=-0.3"), ({"lam": -1.0}, "Received: lam=-1.0")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CrossDomainTripletLoss(**kwargs)
