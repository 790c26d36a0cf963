import numpy as np

from keras_reid.losses import ActiveTripletFraction, MeanNegativeDistance, MeanPositiveDistance


def pair_distances(pids, embeddings, same):
    n = len(pids)
    return [
        np.linalg.norm(embeddings[i] - embeddings[j])
        for i in range(n)
        for j in range(n)
        if i != j and pids[i] >= 0 and pids[j] >= 0 and (pids[i] == pids[j]) == same
    ]


def active_anchors(pids, embeddings, margin):
    """(active, with a triplet) anchor counts; 'active' is margin + d_ap - d_an > 0."""
    active = total = 0
    for a in range(len(pids)):
        distances = [np.linalg.norm(embeddings[a] - e) for e in embeddings]
        d_ap = [d for p, d in enumerate(distances) if p != a and pids[p] == pids[a]]
        d_an = [d for n, d in enumerate(distances) if pids[n] >= 0 and pids[n] != pids[a]]
        if pids[a] >= 0 and d_ap and d_an:
            total += 1
            active += margin + max(d_ap) - min(d_an) > 0
    return active, total


def test_metrics_accumulate_over_batches_like_numpy():
    rng = np.random.default_rng(0)
    batches = [
        (np.repeat(np.arange(3), 3), rng.normal(size=(9, 4)).astype("float32")),
        (np.array([0, 0, 5, 5, 7, -1, -1]), rng.normal(size=(7, 4)).astype("float32")),
    ]
    metrics = {
        "positive": MeanPositiveDistance(),
        "negative": MeanNegativeDistance(),
        "hinge": ActiveTripletFraction(margin=0.5),
        "soft": ActiveTripletFraction(margin="soft"),
    }
    for pids, embeddings in batches:
        for metric in metrics.values():
            metric.update_state(pids, embeddings)

    positive = sum((pair_distances(p, e, True) for p, e in batches), [])
    negative = sum((pair_distances(p, e, False) for p, e in batches), [])
    np.testing.assert_allclose(float(metrics["positive"].result()), np.mean(positive), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["negative"].result()), np.mean(negative), rtol=1e-5)
    for name, margin in (("hinge", 0.5), ("soft", 0.0)):
        counts = np.sum([active_anchors(p, e, margin) for p, e in batches], axis=0)
        np.testing.assert_allclose(float(metrics[name].result()), counts[0] / counts[1])

    metrics["positive"].reset_state()
    assert float(metrics["positive"].result()) == 0.0
