"""k-reciprocal re-ranking against the authors' published code and invariants."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics import re_rank
from keras_reid.evaluation.metrics.rerank import _smallest


def authors_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    """The oracle: ``re_ranking`` from the authors' repository, kept as published.

    Zhong et al., CVPR 2017; github.com/zhunzhong07/person-re-ranking,
    python-version/re_ranking_ranklist.py (by Hao Luo, distance-matrix version
    by Houjing Huang). Only the layout is changed (ruff format); the loops and
    the arithmetic are theirs, so this is slow and only for small cases.
    """
    original_dist = np.concatenate(
        [
            np.concatenate([q_q_dist, q_g_dist], axis=1),
            np.concatenate([q_g_dist.T, g_g_dist], axis=1),
        ],
        axis=0,
    )
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist).astype(np.int32)

    query_num = q_g_dist.shape[0]
    gallery_num = q_g_dist.shape[0] + q_g_dist.shape[1]
    all_num = gallery_num

    for i in range(all_num):
        # k-reciprocal neighbors
        forward_k_neigh_index = initial_rank[i, : k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, : k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward_k_neigh_index = initial_rank[
                candidate, : int(np.around(k1 / 2.0)) + 1
            ]
            candidate_backward_k_neigh_index = initial_rank[
                candidate_forward_k_neigh_index, : int(np.around(k1 / 2.0)) + 1
            ]
            fi_candidate = np.where(candidate_backward_k_neigh_index == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward_k_neigh_index[fi_candidate]
            if len(
                np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)
            ) > 2.0 / 3 * len(candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(
                    k_reciprocal_expansion_index, candidate_k_reciprocal_index
                )

        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num,]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
        del V_qe
    del initial_rank
    invIndex = []
    for i in range(gallery_num):
        invIndex.append(np.where(V[:, i] != 0)[0])

    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)

    for i in range(query_num):
        temp_min = np.zeros(shape=[1, gallery_num], dtype=np.float32)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = []
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(
                V[i, indNonZero[j]], V[indImages[j], indNonZero[j]]
            )
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)

    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    del original_dist
    del V
    del jaccard_dist
    final_dist = final_dist[:query_num, query_num:]
    return final_dist


def clustered_distances(seed, num_query, num_gallery, dtype=np.float64):
    """Euclidean distances between clustered random points, like re-ID features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 8))
    query = centres[rng.integers(0, 6, num_query)] + 0.6 * rng.normal(size=(num_query, 8))
    gallery = centres[rng.integers(0, 6, num_gallery)] + 0.6 * rng.normal(size=(num_gallery, 8))
    return tuple(
        cdist(a, b).astype(dtype) for a, b in ((query, gallery), (query, query), (gallery, gallery))
    )


@pytest.mark.parametrize(
    ("seed", "num_query", "num_gallery", "k1", "k2", "lambda_value", "dtype"),
    [
        (0, 12, 60, 20, 6, 0.3, np.float64),  # the paper's parameters
        (1, 25, 70, 20, 6, 0.3, np.float32),
        (2, 8, 40, 7, 3, 0.5, np.float64),  # odd k1: round(3.5) = 4
        (3, 10, 30, 5, 1, 0.0, np.float64),  # no query expansion, Jaccard only
        (4, 1, 25, 30, 6, 0.3, np.float64),  # one query; k1 beyond N
        (5, 15, 50, 2, 9, 0.8, np.float32),  # k2 > k1 + 1
    ],
)
def test_matches_the_authors_code(seed, num_query, num_gallery, k1, k2, lambda_value, dtype):
    q_g, q_q, g_g = clustered_distances(seed, num_query, num_gallery, dtype)
    expected = authors_re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)
    got = re_rank(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lambda_value)
    assert got.shape == (num_query, num_gallery) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_matches_the_authors_code_on_asymmetric_input():
    # The authors transpose after normalising columns; with non-symmetric
    # q_q / g_g that is not a no-op, and the results must still agree.
    q_g, q_q, g_g = clustered_distances(6, 10, 40)
    rng = np.random.default_rng(0)
    q_q = q_q * rng.uniform(0.5, 1.5, q_q.shape)
    g_g = g_g * rng.uniform(0.5, 1.5, g_g.shape)
    np.testing.assert_allclose(
        re_rank(q_g, q_q, g_g), authors_re_ranking(q_g, q_q, g_g), atol=1e-5, rtol=0
    )


def test_invariants():
    q_g, q_q, g_g = clustered_distances(7, 20, 80)
    dist = re_rank(q_g, q_q, g_g)
    assert dist.shape == (20, 80)
    assert dist.min() >= 0 and dist.max() <= 1 + 1e-6

    # lambda = 1: the original distances, squared and divided by each query's
    # largest squared distance to any item (query or gallery).
    scale = np.maximum(q_q.max(axis=0), q_g.max(axis=1)) ** 2
    np.testing.assert_allclose(
        re_rank(q_g, q_q, g_g, lambda_value=1.0), q_g**2 / scale[:, None], rtol=1e-6
    )

    # A global scale of the inputs changes nothing (the authors normalise).
    scaled = re_rank(3.7 * q_g, 3.7 * q_q, 3.7 * g_g)
    np.testing.assert_allclose(scaled, dist, atol=1e-6)
    np.testing.assert_array_equal(scaled.argmin(axis=1), dist.argmin(axis=1))


def test_tiny_case_traced_by_hand():
    """Points on a line: q at 0, g1 at 1, g2 at 3; k1 = 1, k2 = 1, lambda = 0.5.

    Items 0 = q, 1 = g1, 2 = g2. Squared distances [[0,1,9],[1,0,4],[9,4,0]],
    each row divided by its maximum: T0 = [0, 1/9, 1], T1 = [1/4, 0, 1],
    T2 = [1, 4/9, 0]. Nearest two (k1 + 1): 0 -> {0, 1}, 1 -> {1, 0},
    2 -> {2, 1}. Reciprocal sets: R(0) = R(1) = {0, 1}; R(2) = {2} (2 is not in
    1's nearest two). round(k1 / 2) = 0, so the half sets are {c} and expand
    nothing new. V0 = [1, a, 0] / (1 + a) with a = exp(-1/9) (weights
    exp(-T0)); V1 = [b, 1, 0] / (1 + b), b = exp(-1/4); V2 = [0, 0, 1].
    Shared mass q-g1: s = min(V0[0], V1[0]) + min(V0[1], V1[1])
    = b / (1 + b) + a / (1 + a); Jaccard = 1 - s / (2 - s). q-g2 share nothing:
    Jaccard 1. Final = 0.5 * Jaccard + 0.5 * T0[gallery].
    """
    a, b = np.exp(-1 / 9), np.exp(-1 / 4)
    shared = b / (1 + b) + a / (1 + a)
    expected = [[0.5 * (1 - shared / (2 - shared)) + 0.5 / 9, 0.5 * 1 + 0.5 * 1]]
    q_g = np.array([[1.0, 3.0]])
    q_q = np.array([[0.0]])
    g_g = np.array([[0.0, 2.0], [2.0, 0.0]])
    got = re_rank(q_g, q_q, g_g, k1=1, k2=1, lambda_value=0.5)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(authors_re_ranking(q_g, q_q, g_g, 1, 1, 0.5), expected, rtol=1e-6)


def test_ties_are_broken_by_index():
    # Integer distances tie a lot: the neighbour lists must be those of a
    # stable sort (ties by index), and the re-ranked distances finite.
    rng = np.random.default_rng(8)
    block = rng.integers(0, 4, size=(50, 40)).astype(np.float32)
    for k in (1, 5, 21, 40):
        np.testing.assert_array_equal(
            _smallest(block, k), np.argsort(block, axis=1, kind="stable")[:, :k]
        )
    points = rng.integers(0, 3, size=(30, 2)).astype(float)
    d = cdist(points, points, "cityblock") + 1.0 - np.eye(30)
    assert np.isfinite(re_rank(d[:5, 5:], d[:5, :5], d[5:, 5:], k1=4, k2=2)).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"q_q_dist": np.zeros((3, 3))}, r"q_q_dist must have shape \(2, 2\) .* got \(3, 3\)"),
        ({"g_g_dist": np.zeros((4, 5))}, r"g_g_dist must have shape \(5, 5\)"),
        ({"q_g_dist": np.full((2, 5), np.nan)}, r"q_g_dist \(2, 5\) has 10 NaN"),
        ({"q_g_dist": -np.ones((2, 5))}, r"negative distances"),
        ({"k1": 0}, r"k1 must be an integer >= 1. Received: k1=0"),
        ({"k2": 2.5}, r"k2 must be an integer >= 1"),
        ({"lambda_value": 1.5}, r"lambda_value must be in \[0, 1\]"),
    ],
)
def test_bad_input(change, message):
    rng = np.random.default_rng(0)
    args = {
        "q_g_dist": rng.random((2, 5)),
        "q_q_dist": rng.random((2, 2)),
        "g_g_dist": rng.random((5, 5)),
    }
    args.update(change)
    with pytest.raises(ReIDError, match=message):
        re_rank(**args)
