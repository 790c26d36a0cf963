import numpy as np
import pytest

from keras_reid.losses import QuadrupletLoss


def distance_matrix(embeddings):
    n = len(embeddings)
    return np.array(
        [
            [np.sqrt(np.sum((embeddings[i] - embeddings[j]) ** 2)) for j in range(n)]
            for i in range(n)
        ]
    )


def hard_reference(pids, embeddings, m1, m2):
    """Anchor i, hardest positive j, hardest negative k, h nearest k with id not in {y_i, y_k}."""
    d = distance_matrix(embeddings)
    n = len(pids)
    losses = []
    for i in range(n):
        positives = [j for j in range(n) if j != i and pids[j] == pids[i]]
        negatives = [k for k in range(n) if pids[k] != pids[i]]
        if not positives or not negatives:
            losses.append(0.0)
            continue
        j = max(positives, key=lambda j: d[i, j])
        k = min(negatives, key=lambda k: d[i, k])
        loss = max(d[i, j] - d[i, k] + m1, 0.0)
        others = [h for h in range(n) if pids[h] not in (pids[i], pids[k])]
        if others:
            h = min(others, key=lambda h: d[k, h])
            loss += max(d[i, j] - d[k, h] + m2, 0.0)
        losses.append(loss)
    return np.mean(losses)


def all_reference(pids, embeddings, m1, m2):
    """Chen et al.'s two sums over (i, j, k) and (i, j, k, l), each averaged per anchor."""
    d = distance_matrix(embeddings)
    n = len(pids)
    losses = []
    for i in range(n):
        triplets, quadruplets = [], []
        for j in range(n):
            if j == i or pids[j] != pids[i]:
                continue
            for k in range(n):
                if pids[k] == pids[i]:
                    continue
                triplets.append(max(d[i, j] - d[i, k] + m1, 0.0))
                for l in range(n):  # noqa: E741 - the paper's index names
                    if pids[l] != pids[i] and pids[l] != pids[k]:
                        quadruplets.append(max(d[i, j] - d[l, k] + m2, 0.0))
        losses.append(
            (np.mean(triplets) if triplets else 0.0)
            + (np.mean(quadruplets) if quadruplets else 0.0)
        )
    return np.mean(losses)


BATCHES = [
    np.repeat(np.arange(4), 3),  # P x K
    np.array([4, 4, 1, 9, 1, 1, 6, 4, 2, 9]),  # singletons: anchors without positives
    np.array([0, 1, 0, 1, 1]),  # two ids only: no h exists, the second term is 0
]


@pytest.mark.parametrize("mining, reference", [("hard", hard_reference), ("all", all_reference)])
@pytest.mark.parametrize("margins", [(0.3, 0.2), (0.5, 0.2), (2.0, 1.0)])
def test_matches_brute_force(mining, reference, margins):
    rng = np.random.default_rng(0)
    for pids in BATCHES:
        embeddings = rng.normal(size=(len(pids), 5)).astype("float32")
        expected = reference(pids, embeddings, *margins)
        got = float(QuadrupletLoss(*margins, mining=mining)(pids, embeddings))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mining": "semi"}, "Received: mining='semi'"),
        ({"margin1": -0.5}, "Received: margin1=-0.5"),
        ({"margin2": "soft"}, "Received: margin2='soft'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuadrupletLoss(**kwargs)
