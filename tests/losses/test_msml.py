import numpy as np
import pytest

from keras_reid.losses import MarginSampleMiningLoss


def msml_reference(pids, embeddings, margin):
    """Xiao et al.'s MSML, literally: one hardest positive pair and one hardest negative pair."""
    positive, negative = [], []
    for i in range(len(pids)):
        for j in range(len(pids)):
            distance = np.sqrt(np.sum((embeddings[i] - embeddings[j]) ** 2))
            if i != j and pids[i] == pids[j]:
                positive.append(distance)
            elif pids[i] != pids[j]:
                negative.append(distance)
    if not positive or not negative:
        return 0.0
    return max(max(positive) - min(negative) + margin, 0.0)


@pytest.mark.parametrize("margin", [0.0, 0.3, 3.0])
def test_matches_brute_force(margin):
    rng = np.random.default_rng(0)
    for pids in (np.repeat(np.arange(4), 3), np.array([3, 3, 8, 1, 8, 8, 0])):
        embeddings = rng.normal(size=(len(pids), 5)).astype("float32")
        expected = msml_reference(pids, embeddings, margin)
        got = float(MarginSampleMiningLoss(margin)(pids, embeddings))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_one_value_per_batch_repeated_per_sample():
    pids = np.array([0, 0, 1, 1])
    embeddings = np.array([[0.0], [2.0], [3.0], [3.5]], "float32")
    per_sample = MarginSampleMiningLoss(0.5, reduction="none")(pids, embeddings)
    # Hardest positive pair: (0, 2), distance 2; hardest negative pair: (2, 3), distance 1.
    np.testing.assert_allclose(per_sample, [1.5] * 4)
    # Without a positive pair (or without a negative pair) there is no loss.
    assert float(MarginSampleMiningLoss(0.5)([0, 1, 2], embeddings[:3])) == 0.0
    assert float(MarginSampleMiningLoss(0.5)([4, 4], embeddings[:2])) == 0.0


def test_bad_margin():
    with pytest.raises(ValueError, match="Received: margin=-1"):
        MarginSampleMiningLoss(margin=-1)
