"""rank_metrics against a literal per-query loop and a hand-worked gallery."""

import numpy as np
import pytest

from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics import (
    RankResult,
    rank_metrics,
    rank_metrics_for_rules,
    rank_metrics_in_blocks,
)


def naive_rank_metrics(dist, q_pids, g_pids, q_camids, g_camids, max_rank, nd):
    """The rule read literally: sort each row (stable), drop ignored items, find the hits."""
    cmcs, aps, inps, per_query = [], [], [], []
    for q in range(dist.shape[0]):
        kept_pids = []
        for g in np.argsort(dist[q], kind="stable"):
            if g_pids[g] == -1:
                continue  # junk
            same_camera = q_camids[q] != -1 and g_camids[g] == q_camids[q]
            if same_camera and (nd or g_pids[g] == q_pids[q]):
                continue
            kept_pids.append(g_pids[g])
        hit_ranks = [r + 1 for r, pid in enumerate(kept_pids) if pid == q_pids[q]]
        if not hit_ranks:
            per_query.append(np.nan)
            continue
        cmcs.append([1.0 if hit_ranks[0] <= k else 0.0 for k in range(1, max_rank + 1)])
        aps.append(np.mean([(m + 1) / r for m, r in enumerate(hit_ranks)]))
        inps.append(len(hit_ranks) / hit_ranks[-1])
        per_query.append(aps[-1])
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps), len(aps), np.array(per_query)


def random_case(rng, num_query, num_gallery, num_ids, integer_distances):
    """Labels with junk, distractors, unknown cameras; ties when distances are integers."""
    q_pids = rng.integers(1, num_ids + 1, num_query)
    g_pids = rng.integers(-1, num_ids + 1, num_gallery)  # -1 junk, 0 distractor
    q_camids = rng.integers(-1, 4, num_query)  # -1 unknown camera
    g_camids = rng.integers(-1, 4, num_gallery)
    if integer_distances:
        dist = rng.integers(0, 6, (num_query, num_gallery)).astype(np.float32)
    else:
        dist = rng.random((num_query, num_gallery))
    return dist, q_pids, g_pids, q_camids, g_camids


def assert_matches_naive(dist, q_pids, g_pids, q_camids, g_camids, max_rank, nd):
    cmc, m_ap, m_inp, num_valid, per_query = naive_rank_metrics(
        dist, q_pids, g_pids, q_camids, g_camids, max_rank, nd
    )
    result = rank_metrics(dist, q_pids, g_pids, q_camids, g_camids, max_rank, nd)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-6)
    assert result.mAP == pytest.approx(m_ap, abs=1e-6)
    assert result.mINP == pytest.approx(m_inp, abs=1e-6)
    assert result.num_valid_queries == num_valid
    assert result.num_skipped == len(q_pids) - num_valid
    np.testing.assert_allclose(result.average_precision, per_query, atol=1e-6)


@pytest.mark.parametrize("nd", [False, True], ids=["market", "nd"])
@pytest.mark.parametrize("integer_distances", [False, True], ids=["float", "ties"])
@pytest.mark.parametrize("seed", range(6))
def test_matches_naive_loop_on_random_cases(seed, integer_distances, nd):
    rng = np.random.default_rng(seed)
    case = random_case(rng, 40, 120, 8, integer_distances)
    assert_matches_naive(*case, max_rank=20, nd=nd)


@pytest.mark.parametrize("nd", [False, True], ids=["market", "nd"])
def test_matches_naive_loop_across_query_chunks(nd):
    # More queries than one chunk of rows (256) and a max_rank beyond the gallery.
    rng = np.random.default_rng(7)
    case = random_case(rng, 300, 60, 15, integer_distances=False)
    assert_matches_naive(*case, max_rank=80, nd=nd)


@pytest.mark.parametrize("block", [1, 7, 40])
def test_blocks_of_query_rows_match_the_naive_loop(block):
    rng = np.random.default_rng(11)
    dist, q_pids, g_pids, q_camids, g_camids = random_case(rng, 40, 120, 8, True)
    blocks = ((s, dist[s : s + block]) for s in range(0, len(dist), block))
    results = rank_metrics_in_blocks(blocks, q_pids, g_pids, q_camids, g_camids, max_rank=20)
    for rule, nd in (("market", False), ("nd", True)):
        cmc, m_ap, m_inp, num_valid, per_query = naive_rank_metrics(
            dist, q_pids, g_pids, q_camids, g_camids, 20, nd
        )
        np.testing.assert_allclose(results[rule].cmc, cmc, atol=1e-6)
        assert results[rule].mAP == pytest.approx(m_ap, abs=1e-6)
        assert results[rule].mINP == pytest.approx(m_inp, abs=1e-6)
        assert results[rule].num_valid_queries == num_valid
        np.testing.assert_allclose(results[rule].average_precision, per_query, atol=1e-6)


def test_blocks_must_cover_every_query_once_in_order():
    rng = np.random.default_rng(12)
    dist, *labels = random_case(rng, 10, 30, 4, False)
    with pytest.raises(ReIDError, match="expected a block starting at query 5, got one at 6"):
        rank_metrics_in_blocks([(0, dist[:5]), (6, dist[6:])], *labels)
    with pytest.raises(ReIDError, match="cover 5 of 10 queries"):
        rank_metrics_in_blocks([(0, dist[:5])], *labels)


def test_float64_and_integer_matrices():
    rng = np.random.default_rng(3)
    dist, *labels = random_case(rng, 20, 50, 5, integer_distances=True)
    for matrix in (dist.astype(np.float64), dist.astype(np.int64)):
        assert_matches_naive(matrix, *labels, max_rank=10, nd=False)


def test_both_rules_at_once_equal_separate_calls():
    rng = np.random.default_rng(11)
    case = random_case(rng, 30, 90, 6, integer_distances=True)
    both = rank_metrics_for_rules(*case, max_rank=15)
    for rule, nd in (("market", False), ("nd", True)):
        alone = rank_metrics(*case, max_rank=15, different_camera_only=nd)
        np.testing.assert_array_equal(both[rule].cmc, alone.cmc)
        assert both[rule].mAP == alone.mAP and both[rule].mINP == alone.mINP


def toy_gallery():
    """Three queries, seven gallery items; the expected numbers are worked by hand.

    gallery  pid  cam   d(q0)  d(q1)  d(q2)
    g0        1    0    0.10   0.10   0.90
    g1        2    1    0.20   0.20   0.80
    g2        1    1    0.30   0.30   0.70
    g3       -1    1    0.35   0.35   0.05   (junk)
    g4        0    2    0.40   0.40   0.60   (distractor)
    g5        3    0    0.50   0.50   0.20
    g6        1    2    0.60   0.60   0.30

    q0 (pid 1, cam 0). Market rule: g0 is same id + same camera and g3 is junk,
    both ignored; the list is g1 g2 g4 g5 g6 with hits at ranks 2 and 5:
    AP = (1/2 + 2/5) / 2 = 0.45, INP = 2/5 = 0.4, first hit at rank 2.
    -nd: every cam-0 item (g0, g5) is ignored: g1 g2 g4 g6, hits at 2 and 4:
    AP = (1/2 + 2/4) / 2 = 0.5, INP = 2/4 = 0.5.
    q1 (pid 2, cam 1): its only match g1 is in its own camera: skipped.
    q2 (pid 3, camera unknown -1): no item is ignored for its camera, g3 is
    junk; g5 comes first: AP = INP = 1 under both rules.
    Market: Rank-1 = (0 + 1) / 2, mAP = (0.45 + 1) / 2 = 0.725,
    mINP = (0.4 + 1) / 2 = 0.7. -nd: Rank-1 = 0.5, mAP = mINP = 0.75.
    """
    dist = np.array(
        [
            [0.10, 0.20, 0.30, 0.35, 0.40, 0.50, 0.60],
            [0.10, 0.20, 0.30, 0.35, 0.40, 0.50, 0.60],
            [0.90, 0.80, 0.70, 0.05, 0.60, 0.20, 0.30],
        ]
    )
    return dist, [1, 2, 3], [1, 2, 1, -1, 0, 3, 1], [0, 1, -1], [0, 1, 1, 1, 2, 0, 2]


def test_hand_worked_toy_gallery():
    market = rank_metrics(*toy_gallery(), max_rank=5)
    np.testing.assert_allclose(market.cmc, [0.5, 1, 1, 1, 1])
    assert market.mAP == pytest.approx(0.725)
    assert market.mINP == pytest.approx(0.7)
    assert (market.num_valid_queries, market.num_skipped) == (2, 1)
    np.testing.assert_allclose(market.average_precision, [0.45, np.nan, 1.0])

    nd = rank_metrics(*toy_gallery(), max_rank=5, different_camera_only=True)
    np.testing.assert_allclose(nd.cmc, [0.5, 1, 1, 1, 1])
    assert nd.mAP == pytest.approx(0.75)
    assert nd.mINP == pytest.approx(0.75)


def test_ties_go_by_gallery_order():
    # Same distance for a wrong id and the match: whichever comes first in the
    # gallery ranks first.
    first_wrong = rank_metrics([[1.0, 1.0]], [1], [2, 1], [0], [1, 1], max_rank=2)
    first_right = rank_metrics([[1.0, 1.0]], [1], [1, 2], [0], [1, 1], max_rank=2)
    assert first_wrong.mAP == pytest.approx(0.5)
    assert first_right.mAP == pytest.approx(1.0)


def test_unknown_camera_is_never_the_same_camera():
    # Query and match both have camid -1: the match counts (it would be ignored
    # as same id + same camera if the cameras were known and equal).
    for nd in (False, True):
        result = rank_metrics([[0.0, 1.0]], [5], [5, 6], [-1], [-1, -1], different_camera_only=nd)
        assert result.rank(1) == 1.0


def test_result_reads_well():
    result = rank_metrics(*toy_gallery(), max_rank=10)
    assert isinstance(result, RankResult)
    assert result.rank(1) == 0.5
    text = str(result)
    assert "Rank-1 50.00%" in text and "mAP 72.50%" in text and "1 skipped" in text
    with pytest.raises(ReIDError, match="outside the computed CMC"):
        result.rank(11)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([[0.1, 0.2]], [1, 2], [1, 2], [0], [1, 1]), r"q_pids has 2 entries .* needs 1"),
        (([[0.1, 0.2]], [1], [1], [0], [1, 1]), r"g_pids has 1 entries .* needs 2"),
        (([[0.1, 0.2]], [1], [1, 2], [0, 1], [1, 1]), r"q_camids has 2 entries"),
        (([[0.1, np.nan]], [1], [1, 2], [0], [1, 1]), r"1 NaN value\(s\), the first at query 0"),
        ((np.zeros((0, 3)), [], [1, 2, 3], [], [0, 1, 2]), r"the query is empty \(.*\(0, 3\)"),
        ((np.zeros((2, 0)), [1, 2], [], [0, 1], []), r"the gallery is empty"),
        (([0.1, 0.2], [1], [1, 2], [0], [1, 1]), r"must be 2-D .* got shape \(2,\)"),
        (([[0.1, 0.2]], [1.5], [1, 2], [0], [1, 1]), r"q_pids must hold integers"),
        (([[0.1, 0.2]], [1], [2, 3], [0], [1, 1]), r"no query has a true match .* all 1 queries"),
    ],
)
def test_bad_input_is_one_clear_error(args, message):
    with pytest.raises(ReIDError, match=message):
        rank_metrics(*args)


def test_bad_max_rank():
    with pytest.raises(ReIDError, match="max_rank must be a positive integer"):
        rank_metrics(*toy_gallery(), max_rank=0)
