"""pairwise_distance against scipy's cdist."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics import l2_normalize, pairwise_distance


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    # More query rows than one chunk (1024) so the chunked path is covered.
    return rng.normal(size=(1100, 16)), rng.normal(size=(30, 16))


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("normalize", [False, True])
def test_matches_cdist(features, metric, normalize):
    query, gallery = features
    if normalize:
        query = query / np.linalg.norm(query, axis=1, keepdims=True)
        gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    expected = cdist(query, gallery, metric)
    dist = pairwise_distance(*features, metric=metric, normalize=normalize)
    assert dist.dtype == np.float32 and dist.shape == (1100, 30)
    np.testing.assert_allclose(dist, expected, rtol=1e-4, atol=1e-4)


def test_never_negative_and_near_zero_on_itself():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 8)) * 100
    for metric in ("euclidean", "sqeuclidean", "cosine"):
        dist = pairwise_distance(x, x, metric=metric)
        assert dist.min() >= 0
        # The expansion loses precision only relative to the norms.
        assert np.abs(np.diag(dist)).max() < 1e-2 * (1 if metric == "cosine" else 100)


def test_normalised_metrics_rank_alike():
    rng = np.random.default_rng(2)
    query, gallery = rng.normal(size=(5, 8)), rng.normal(size=(40, 8))
    orders = [
        np.argsort(pairwise_distance(query, gallery, m, normalize=True), axis=1)
        for m in ("euclidean", "sqeuclidean", "cosine")
    ]
    np.testing.assert_array_equal(orders[0], orders[1])
    np.testing.assert_array_equal(orders[0], orders[2])


def test_l2_normalize():
    np.testing.assert_allclose(l2_normalize([[3.0, 4.0]]), [[0.6, 0.8]])
    with pytest.raises(ReIDError, match=r"1 all-zero feature vector\(s\) \(rows \[1\]\)"):
        l2_normalize([[1.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize(
    ("query", "gallery", "kwargs", "message"),
    [
        (np.ones((2, 3)), np.ones((4, 5)), {}, r"different sizes: \(2, 3\) vs \(4, 5\)"),
        (np.ones(3), np.ones((4, 3)), {}, r"query features must be a 2-D array .* \(3,\)"),
        (np.ones((2, 3)), np.ones((0, 3)), {}, r"gallery features is empty \(shape \(0, 3\)\)"),
        (np.array([[np.nan, 1.0]]), np.ones((2, 2)), {}, r"NaN or inf in 1 of 1"),
        (np.ones((2, 3)), np.ones((2, 3)), {"metric": "l1"}, r"unknown metric 'l1'; expected"),
        (np.ones((1, 2)), np.zeros((1, 2)), {"metric": "cosine"}, r"all-zero feature"),
    ],
)
def test_bad_input(query, gallery, kwargs, message):
    with pytest.raises(ReIDError, match=message):
        pairwise_distance(query, gallery, **kwargs)
