"""CUHK03 single-gallery-shot, video pooling and the table-level evaluate."""

import itertools
import logging

import numpy as np
import pandas as pd
import pytest

from keras_reid.data import make_table
from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics import (
    cuhk03_single_shot,
    evaluate,
    format_results,
    pairwise_distance,
    pool_tracklets,
    rank_metrics,
    re_rank,
)

# ---------------------------------------------------------------- CUHK03


def test_single_shot_equals_full_list_with_one_image_per_identity():
    # With one gallery image per identity there is nothing to draw: the
    # single-shot CMC is the ordinary one, whatever the seed.
    rng = np.random.default_rng(0)
    g_pids = rng.permutation(np.arange(1, 41))
    g_camids = rng.integers(0, 3, 40)
    q_pids = rng.integers(1, 41, 25)
    q_camids = rng.integers(0, 3, 25)
    dist = rng.random((25, 40))
    for nd in (False, True):
        full = rank_metrics(dist, q_pids, g_pids, q_camids, g_camids, 10, nd)
        single = cuhk03_single_shot(
            dist, q_pids, g_pids, q_camids, g_camids, 10, num_repeats=3, seed=5,
            different_camera_only=nd,
        )  # fmt: skip
        np.testing.assert_allclose(single.cmc, full.cmc)
        assert single.mAP == full.mAP and single.mINP == full.mINP


def exact_single_shot_cmc(dist, q_pid, g_pids, visible, max_rank):
    """Expected single-shot CMC of one query, over every possible draw (brute force)."""
    groups = {}
    for g in np.flatnonzero(visible):
        groups.setdefault(g_pids[g], []).append(g)
    true_matches = groups.pop(q_pid)
    others = list(groups.values())
    cmc = np.zeros(max_rank)
    draws = 0
    for true_g in true_matches:
        for picked in itertools.product(*others):
            ahead = sum(
                (dist[g] < dist[true_g]) or (dist[g] == dist[true_g] and g < true_g) for g in picked
            )
            cmc += (1 + ahead) <= np.arange(1, max_rank + 1)
            draws += 1
    return cmc / draws


def test_single_shot_converges_to_the_exact_expectation():
    # One query (pid 1, camera 0); the match in camera 0 (g0) is ignored.
    g_pids = np.array([1, 1, 1, 2, 2, 3, 3, 3, 4])
    g_camids = np.array([0, 1, 2, 1, 0, 2, 1, 1, 2])
    dist = np.array([[0.1, 0.5, 0.9, 0.8, 0.05, 0.6, 0.95, 0.2, 0.7]])
    visible = np.array([False] + [True] * 8)
    expected = exact_single_shot_cmc(dist[0], 1, g_pids, visible, 4)
    got = cuhk03_single_shot(dist, [1], g_pids, [0], g_camids, 4, num_repeats=20000, seed=1)
    np.testing.assert_allclose(got.cmc, expected, atol=0.02)
    # -nd: camera 0 disappears entirely (g0 and g4).
    visible_nd = g_camids != 0
    expected_nd = exact_single_shot_cmc(dist[0], 1, g_pids, visible_nd, 4)
    got_nd = cuhk03_single_shot(
        dist, [1], g_pids, [0], g_camids, 4, num_repeats=20000, seed=1, different_camera_only=True
    )
    np.testing.assert_allclose(got_nd.cmc, expected_nd, atol=0.02)
    assert not np.allclose(expected, expected_nd)


def test_single_shot_is_reproducible_and_uses_the_full_list_for_map():
    rng = np.random.default_rng(2)
    dist = rng.random((30, 90))
    labels = (rng.integers(1, 10, 30), rng.integers(1, 10, 90), rng.integers(0, 2, 30),
              rng.integers(0, 2, 90))  # fmt: skip
    a = cuhk03_single_shot(dist, *labels, 20, num_repeats=4, seed=3)
    b = cuhk03_single_shot(dist, *labels, 20, num_repeats=4, seed=3)
    c = cuhk03_single_shot(dist, *labels, 20, num_repeats=4, seed=4)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert not np.array_equal(a.cmc, c.cmc)
    full = rank_metrics(dist, *labels, 20)
    assert a.mAP == full.mAP and a.num_valid_queries == full.num_valid_queries
    # Nine identities, so one drawn image each: the true match is within rank 9.
    np.testing.assert_array_equal(a.cmc[8:], 1.0)
    with pytest.raises(ReIDError, match="num_repeats must be a positive integer"):
        cuhk03_single_shot(dist, *labels, num_repeats=0)


# ---------------------------------------------------------------- video


def video_table(rows):
    """rows: (tracklet, pid, camid) per frame."""
    records = [
        (f"/v/{t:03d}_{i:02d}.jpg", pid, cam, "mars", t, i) for i, (t, pid, cam) in enumerate(rows)
    ]
    return make_table(records, "mars", video=True)


def test_pool_tracklets_mean_and_max():
    table = video_table([(7, 1, 0), (3, 2, 1), (7, 1, 0), (3, 2, 1), (3, 2, 1), (9, 1, 2)])
    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    pooled, tracklets = pool_tracklets(features, table)
    # First-appearance order: 7, 3, 9.
    assert tracklets.tracklet.tolist() == [7, 3, 9]
    assert tracklets.pid.tolist() == [1, 2, 1] and tracklets.camid.tolist() == [0, 1, 2]
    assert tracklets.num_frames.tolist() == [2, 3, 1]
    assert tracklets.path.tolist() == ["/v/007_00.jpg", "/v/003_01.jpg", "/v/009_05.jpg"]
    expected = pd.DataFrame(features).groupby(table.tracklet.to_numpy(), sort=False).mean()
    np.testing.assert_allclose(pooled, expected.to_numpy())
    pooled_max, _ = pool_tracklets(features, table, method="max")
    np.testing.assert_allclose(pooled_max, [[4, 5], [8, 9], [10, 11]])


def test_pool_tracklets_errors():
    table = video_table([(1, 1, 0), (1, 2, 0)])
    with pytest.raises(ReIDError, match=r"1 tracklet\(s\) mix several pid values, e.g. tracklet 1"):
        pool_tracklets(np.zeros((2, 3)), table)
    with pytest.raises(ReIDError, match=r"features of shape \(3, 3\) do not match .* 2 frames"):
        pool_tracklets(np.zeros((3, 3)), table)
    with pytest.raises(ReIDError, match="needs a video table with a 'tracklet' column"):
        pool_tracklets(np.zeros((2, 3)), table.drop(columns="tracklet"))
    with pytest.raises(ReIDError, match="unknown pooling 'median'"):
        pool_tracklets(np.zeros((2, 3)), table, method="median")


# ---------------------------------------------------------------- evaluate


def image_split(rng, name, centres, pids, camids, noise=0.8):
    features = centres[pids] + noise * rng.normal(size=(len(pids), centres.shape[1]))
    table = make_table(
        [
            (f"/{name}/{i}.jpg", int(p), int(c))
            for i, (p, c) in enumerate(zip(pids, camids, strict=True))
        ],
        "toy",
    )
    return features.astype(np.float32), table


@pytest.fixture
def toy_split():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(13, 16))
    q_feats, query = image_split(
        rng, "query", centres, rng.integers(1, 13, 30), rng.integers(0, 3, 30)
    )
    g_pids = rng.integers(-1, 13, 150)
    g_feats, gallery = image_split(
        rng, "gallery", centres, np.maximum(g_pids, 0), rng.integers(0, 3, 150)
    )
    gallery["pid"] = g_pids
    return q_feats, g_feats, query, gallery


def labels(query, gallery):
    return query.pid, gallery.pid, query.camid, gallery.camid


def test_evaluate_market_row(toy_split):
    q_feats, g_feats, query, gallery = toy_split
    row = evaluate(q_feats, g_feats, query, gallery, normalize=True, ranks=(1, 5))
    assert list(row.columns) == [
        "rank1", "rank5", "mAP", "mINP", "rank1_nd", "rank5_nd", "mAP_nd", "mINP_nd",
        "num_query", "num_valid", "protocol", "metric", "rerank",
    ]  # fmt: skip
    dist = pairwise_distance(q_feats, g_feats, normalize=True)
    for suffix, nd in (("", False), ("_nd", True)):
        expected = rank_metrics(dist, *labels(query, gallery), 5, nd)
        assert row[f"rank1{suffix}"][0] == expected.cmc[0]
        assert row[f"rank5{suffix}"][0] == expected.cmc[4]
        assert row[f"mAP{suffix}"][0] == expected.mAP
        assert row[f"mINP{suffix}"][0] == expected.mINP
    assert row.num_query[0] == 30 and row.protocol[0] == "market"
    assert row.metric[0] == "euclidean+norm" and not row.rerank[0]


def test_evaluate_rerank_and_cuhk03(toy_split):
    q_feats, g_feats, query, gallery = toy_split
    row = evaluate(q_feats, g_feats, query, gallery, rerank={"k1": 10, "lambda_value": 0.5})
    dist = re_rank(
        pairwise_distance(q_feats, g_feats),
        pairwise_distance(q_feats, q_feats),
        pairwise_distance(g_feats, g_feats),
        k1=10,
        lambda_value=0.5,
    )
    assert row.mAP[0] == rank_metrics(dist, *labels(query, gallery)).mAP
    assert row.rerank[0]

    row = evaluate(q_feats, g_feats, query, gallery, protocol="cuhk03", num_repeats=3, seed=2)
    single = cuhk03_single_shot(
        pairwise_distance(q_feats, g_feats), *labels(query, gallery), 10, num_repeats=3, seed=2
    )
    assert row.rank1[0] == single.cmc[0] and row.mAP[0] == single.mAP


def test_evaluate_video_pools_tracklets():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 8))
    frames = []
    for tracklet in range(40):
        pid, cam = int(rng.integers(1, 6)), int(rng.integers(0, 3))
        frames += [(tracklet, pid, cam)] * int(rng.integers(1, 5))
    table = video_table(frames)
    features = centres[table.pid] + rng.normal(size=(len(table), 8))
    query, gallery = table[table.tracklet < 10], table[table.tracklet >= 5]
    q_feats, g_feats = features[query.index], features[gallery.index]
    row = evaluate(q_feats, g_feats, query, gallery, protocol="video", pooling="max")
    q_pooled, q_tracks = pool_tracklets(q_feats, query, "max")
    g_pooled, g_tracks = pool_tracklets(g_feats, gallery, "max")
    expected = rank_metrics(pairwise_distance(q_pooled, g_pooled), *labels(q_tracks, g_tracks))
    assert row.mAP[0] == expected.mAP and row.num_query[0] == 10
    with pytest.raises(ReIDError, match="'tracklet' column"):
        evaluate(q_feats, g_feats, query.drop(columns="tracklet"), gallery, protocol="video")


def test_format_results_in_percent(toy_split):
    row = evaluate(*toy_split)
    text = format_results(row)
    assert "rank1" in text and f"{100 * row.mAP[0]:.1f}" in text


def test_warns_when_queries_with_unknown_cameras_are_in_the_gallery(toy_split, caplog):
    q_feats, g_feats, query, gallery = toy_split
    query = query.assign(camid=-1)
    gallery = gallery.copy()
    gallery.loc[0, "path"] = query.path[0]
    with caplog.at_level(logging.WARNING, logger="keras_reid.evaluation.metrics"):
        evaluate(q_feats, g_feats, query, gallery)
    assert "1 query image(s) are also in the gallery with an unknown camera" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"protocol": "duke"}, r"unknown protocol 'duke'; expected one of: market, cuhk03, video"),
        ({"ranks": (0, 5)}, r"ranks must be positive integers"),
        ({"rerank": {"k3": 1}}, r"unknown re-ranking option\(s\) k3"),
        ({"rerank": "yes"}, r"rerank must be False, True or a dict"),
        ({"metric": "l1"}, r"unknown metric 'l1'"),
    ],
)
def test_evaluate_bad_arguments(toy_split, change, message):
    with pytest.raises(ReIDError, match=message):
        evaluate(*toy_split, **change)


def test_evaluate_tables_must_match_features(toy_split):
    q_feats, g_feats, query, gallery = toy_split
    with pytest.raises(ReIDError, match=r"query features of shape \(29, 16\) .* table of 30"):
        evaluate(q_feats[:29], g_feats, query, gallery)
    with pytest.raises(ReIDError, match=r"gallery table lacks column\(s\) camid"):
        evaluate(q_feats, g_feats, query, gallery.drop(columns="camid"))
    with pytest.raises(ReIDError, match="the query table is empty"):
        evaluate(q_feats[:0], g_feats, query.iloc[:0], gallery)
    with pytest.raises(ReIDError, match="no query has a true match"):
        evaluate(q_feats, g_feats, query.assign(pid=99), gallery)
