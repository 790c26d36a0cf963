import numpy as np
import pytest
import tensorflow as tf

from keras_reid.losses import BatchHardTripletLoss, TripletLoss


def euclidean(a, b):
    return float(np.sqrt(np.sum((a - b) ** 2)))


def batch_hard_reference(pids, embeddings, margin):
    """Hermans et al.'s L_BH, literally: for each anchor, loop over its positives and negatives."""
    losses = []
    for a in range(len(pids)):
        d_ap = [euclidean(embeddings[a], embeddings[p]) for p in range(len(pids))]
        d_ap = [d for p, d in enumerate(d_ap) if p != a and pids[p] == pids[a]]
        d_an = [euclidean(embeddings[a], embeddings[n]) for n in range(len(pids))]
        d_an = [d for n, d in enumerate(d_an) if pids[n] != pids[a]]
        if not d_ap or not d_an:
            losses.append(0.0)
        elif margin == "soft":
            losses.append(np.log1p(np.exp(max(d_ap) - min(d_an))))
        else:
            losses.append(max(margin + max(d_ap) - min(d_an), 0.0))
    return np.mean(losses)


def batch_all_reference(pids, embeddings, margin):
    """Per anchor, the mean hinge over its (positive, negative) pairs; then mean over anchors."""
    per_anchor = []
    for a in range(len(pids)):
        hinges = []
        for p in range(len(pids)):
            for n in range(len(pids)):
                if p != a and pids[p] == pids[a] and pids[n] != pids[a]:
                    d_ap = euclidean(embeddings[a], embeddings[p])
                    d_an = euclidean(embeddings[a], embeddings[n])
                    hinges.append(max(margin + d_ap - d_an, 0.0))
        per_anchor.append(np.mean(hinges) if hinges else 0.0)
    return np.mean(per_anchor)


def batches():
    """A P x K batch, a batch with singletons (anchors without positives) as (B, 1) ids."""
    rng = np.random.default_rng(0)
    pk = np.repeat(np.arange(4), 3)
    ragged = np.array([[5], [5], [2], [9], [2], [2], [7], [5], [11]])
    return [
        (pk, rng.normal(size=(12, 5)).astype("float32")),
        (ragged, rng.normal(size=(9, 5)).astype("float32") * 0.3),
    ]


@pytest.mark.parametrize("margin", ["soft", 0.0, 0.3, 2.0])
def test_batch_hard_matches_brute_force(margin):
    for pids, embeddings in batches():
        expected = batch_hard_reference(pids.ravel(), embeddings, margin)
        got = float(BatchHardTripletLoss(margin)(pids, embeddings))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("margin", [0.3, 5.0])
def test_batch_all_matches_brute_force(margin):
    for pids, embeddings in batches():
        expected = batch_all_reference(pids.ravel(), embeddings, margin)
        got = float(TripletLoss(margin)(pids, embeddings))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_anchor_without_triplet_contributes_zero_to_the_mean():
    # Ids 0 0 1; anchor 0: d_ap = 1, d_an = 2; anchor 1: d_ap = 1, d_an = sqrt(5);
    # anchor 2 has no positive. With margin 2 the mean is (1 + 3 - sqrt(5) + 0) / 3.
    embeddings = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], "float32")
    loss = BatchHardTripletLoss(2.0)
    per_anchor = BatchHardTripletLoss(2.0, reduction="none")([0, 0, 1], embeddings)
    np.testing.assert_allclose(per_anchor, [1.0, 3.0 - np.sqrt(5.0), 0.0], atol=1e-6)
    np.testing.assert_allclose(loss([0, 0, 1], embeddings), (4.0 - np.sqrt(5.0)) / 3, atol=1e-6)
    assert float(loss([3], embeddings[:1])) == 0.0


def test_soft_margin_gradient_matches_finite_differences():
    pids, embeddings = batches()[1]
    embeddings = embeddings.astype("float64")
    variable = tf.Variable(embeddings)
    with tf.GradientTape() as tape:
        loss = BatchHardTripletLoss("soft", dtype="float64")(pids, variable)
    gradient = tape.gradient(loss, variable).numpy()

    step = 1e-6
    numeric = np.zeros_like(embeddings)
    for index in np.ndindex(embeddings.shape):
        shifted = [embeddings.copy(), embeddings.copy()]
        shifted[0][index] += step
        shifted[1][index] -= step
        up, down = (batch_hard_reference(pids.ravel(), e, "soft") for e in shifted)
        numeric[index] = (up - down) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, atol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: BatchHardTripletLoss(margin="hard"), "Received: margin='hard'"),
        (lambda: BatchHardTripletLoss(margin=-0.1), "Received: margin=-0.1"),
        (lambda: TripletLoss(margin="soft"), "Received: margin='soft'"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
