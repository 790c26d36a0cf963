"""CMC and ranked-list figures: files written whole, frames coloured by outcome."""

import os

import cv2
import numpy as np
import pandas as pd
import pytest

from keras_reid.data import make_table
from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics import evaluate, rank_metrics
from keras_reid.evaluation.metrics.evaluate import rank_protocol
from keras_reid.evaluation.plots import (
    HIT,
    IGNORED,
    MISS,
    QUERY,
    _choose_queries,
    plot_cmc,
    plot_ranked_lists,
    ranked_lists,
)


def count_colour(image_bgr, rgb):
    return int(np.all(image_bgr == np.array(rgb[::-1], dtype=np.uint8), axis=2).sum())


@pytest.fixture
def tiny_dataset(tmp_path):
    """Two queries and six gallery images written as flat-coloured JPEG crops."""
    folder = tmp_path / "images"
    folder.mkdir()

    def split(name, rows):
        records = []
        for i, (pid, cam) in enumerate(rows):
            path = folder / f"{name}{i}.jpg"
            cv2.imwrite(str(path), np.full((64, 32, 3), 40 * i + 20, np.uint8))
            records.append((str(path), pid, cam))
        return make_table(records, "tiny")

    query = split("q", [(1, 0), (2, 1)])
    gallery = split("g", [(1, 0), (1, 1), (3, 1), (-1, 2), (2, 0), (2, 2)])
    dist = np.array(
        [
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # q0: ignored, hit, miss, ignored, miss, miss
            [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # q1: hit first
        ]
    )
    return dist, query, gallery


def test_plot_cmc_writes_a_png_atomically(tmp_path):
    out = tmp_path / "figs" / "cmc.png"
    written = plot_cmc(
        {"a": np.linspace(0.5, 1, 20), "b": rank_metrics([[0.1, 0.2]], [1], [2, 1], [0], [1, 1])},
        out,
    )
    assert written == str(out)
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 100
    assert os.listdir(out.parent) == ["cmc.png"]  # no temporary file left


def test_plot_cmc_errors(tmp_path):
    with pytest.raises(ReIDError, match="unknown extension 'txt'"):
        plot_cmc({"a": [0.5, 1.0]}, tmp_path / "cmc.txt")
    with pytest.raises(ReIDError, match="no results to plot"):
        plot_cmc({}, tmp_path / "cmc.png")
    with pytest.raises(ReIDError, match="'a' is not a 1-D CMC array"):
        plot_cmc({"a": [[0.5]]}, tmp_path / "cmc.png")
    assert os.listdir(tmp_path) == []


def test_ranked_lists_frames(tiny_dataset, tmp_path):
    dist, query, gallery = tiny_dataset
    out = plot_ranked_lists(dist, query, gallery, tmp_path / "ranks.png", top_k=6)
    image = cv2.imread(out)
    for colour in (HIT, MISS, IGNORED, QUERY):
        assert count_colour(image, colour) > 50, colour


def test_ranked_lists_nd_greys_the_whole_camera(tiny_dataset, tmp_path):
    dist, query, gallery = tiny_dataset
    # q1 (camera 1) with top 3 = g5 (id 2, cam 2: hit), g4 (id 2, cam 0: hit),
    # g3 (junk): no miss is shown; for q0 under -nd, g0 is ignored (grey).
    out = plot_ranked_lists(
        dist, query, gallery, tmp_path / "nd.png", top_k=3, query_indices=[1],
        different_camera_only=True,
    )  # fmt: skip
    image = cv2.imread(out)
    assert count_colour(image, MISS) == 0
    assert count_colour(image, HIT) > 50 and count_colour(image, IGNORED) > 50


def test_worst_first_and_errors(tiny_dataset, tmp_path):
    dist, query, gallery = tiny_dataset
    out = plot_ranked_lists(
        dist, query, gallery, tmp_path / "worst.png", num_queries=1, top_k=2, worst_first=True
    )
    assert cv2.imread(out) is not None
    with pytest.raises(ReIDError, match=r"query_indices must be in \[0, 2\)"):
        plot_ranked_lists(dist, query, gallery, tmp_path / "x.png", query_indices=[5])
    broken = gallery.copy()
    broken.loc[1, "path"] = str(tmp_path / "missing.jpg")
    with pytest.raises(ReIDError, match=r"cannot read image .*missing.jpg"):
        plot_ranked_lists(dist, query, broken, tmp_path / "x.png")
    with pytest.raises(ReIDError, match="the gallery table lacks path"):
        plot_ranked_lists(dist, query, gallery.drop(columns="path"), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_choose_queries():
    ap = np.array([0.9, np.nan, 0.2, 0.5, 0.2])
    # Lowest AP first, ties by query order, queries without a match left out.
    np.testing.assert_array_equal(_choose_queries(ap, 3, True, None, 0), [2, 4, 3])
    sample = _choose_queries(ap, 10, False, None, 0)
    np.testing.assert_array_equal(sample, [0, 2, 3, 4])
    np.testing.assert_array_equal(_choose_queries(ap, 2, False, [1], 0), [1])


# ------------------------------------------------ the data the figure draws, per protocol


def brute_force_ranking(dist_row, q_pid, q_cam, g_pids, g_cams, nd=False):
    """Ranks (0 = ignored), positives and AP of one query, by plain loops over the gallery."""
    order = sorted(range(len(dist_row)), key=lambda g: (dist_row[g], g))
    ranks, positives, rank = [], [], 0
    for g in order:
        same_camera = q_cam != -1 and g_cams[g] == q_cam
        ignored = g_pids[g] == -1 or (same_camera if nd else same_camera and g_pids[g] == q_pid)
        if ignored:
            ranks.append(0)
            positives.append(False)
            continue
        rank += 1
        ranks.append(rank)
        positives.append(g_pids[g] == q_pid)
    hits = [r for r, p in zip(ranks, positives, strict=True) if p]
    ap = sum((m + 1) / r for m, r in enumerate(hits)) / len(hits) if hits else float("nan")
    return order, ranks, positives, ap


@pytest.fixture
def toy_gallery():
    """q0: pid 1, camera 0; q1: pid 3, camera 1; six gallery items with a tie (worked below)."""
    q_pids, q_cams = np.array([1, 3]), np.array([0, 1])
    g_pids = np.array([2, 1, 1, -1, 3, 1])
    g_cams = np.array([1, 0, 2, 1, 0, 1])
    dist = np.array(
        [
            [0.3, 0.2, 0.3, 0.3, 0.4, 0.5],
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
        ]
    )
    return dist, q_pids, g_pids, q_cams, g_cams


def test_ranked_lists_market_rule_by_hand(toy_gallery):
    # q0 sorted (ties by gallery order): g1 (id 1, its own camera: ignored), g0 (id 2: rank 1),
    # g2 (id 1, camera 2: hit at rank 2), g3 (junk: ignored), g4 (id 3: rank 3), g5 (hit, rank 4).
    # AP = mean(1/2, 2/4) = 0.5.
    # q1: g5 (rank 1, miss), g4 (id 3, camera 0: hit at rank 2), g3 (junk), g2, g1, g0: AP 1/2.
    rows = ranked_lists(*toy_gallery, query_indices=[0, 1], top_k=6)
    q0, q1 = rows
    assert q0.query == 0 and q1.query == 1
    np.testing.assert_array_equal(q0.gallery, [1, 0, 2, 3, 4, 5])
    np.testing.assert_array_equal(q0.ranks, [0, 1, 2, 0, 3, 4])
    np.testing.assert_array_equal(q0.matches, [False, False, True, False, False, True])
    np.testing.assert_array_equal(q0.ignored, [True, False, False, True, False, False])
    np.testing.assert_allclose(q0.distances, [0.2, 0.3, 0.3, 0.3, 0.4, 0.5])
    assert q0.average_precision == pytest.approx(0.5)
    np.testing.assert_array_equal(q1.gallery, [5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(q1.ranks, [1, 2, 0, 3, 4, 5])
    assert q1.average_precision == pytest.approx(0.5)

    # Ignored entries left out: ranks 1..top_k with no gaps.
    (short,) = ranked_lists(*toy_gallery, query_indices=[0], top_k=3, show_ignored=False)
    np.testing.assert_array_equal(short.gallery, [0, 2, 4])
    np.testing.assert_array_equal(short.ranks, [1, 2, 3])
    assert not short.ignored.any()
    # Shown in place: the first top_k entries, ignored ones taking no rank.
    (first,) = ranked_lists(*toy_gallery, query_indices=[0], top_k=3)
    np.testing.assert_array_equal(first.ranks, [0, 1, 2])


def test_ranked_lists_nd_rule_by_hand(toy_gallery):
    # -nd: every camera-0 item is out for q0 (g1, g4), and the junk g3:
    # g0 rank 1, g2 hit at 2, g5 hit at 3. AP = mean(1/2, 2/3) = 7/12.
    (q0,) = ranked_lists(*toy_gallery, query_indices=[0], top_k=6, different_camera_only=True)
    np.testing.assert_array_equal(q0.gallery, [1, 0, 2, 3, 4, 5])
    np.testing.assert_array_equal(q0.ranks, [0, 1, 2, 0, 0, 3])
    np.testing.assert_array_equal(q0.ignored, [True, False, False, True, True, False])
    np.testing.assert_array_equal(q0.matches, [False, False, True, False, False, True])
    assert q0.average_precision == pytest.approx(7 / 12)


def test_ranked_lists_agree_with_a_brute_force_loop_and_the_metrics():
    # Coarse distances (many ties), unknown cameras, junk and distractors.
    rng = np.random.default_rng(3)
    dist = rng.integers(0, 6, (12, 40)).astype(np.float32)
    q_pids, g_pids = rng.integers(1, 5, 12), rng.integers(-1, 5, 40)
    q_cams, g_cams = rng.integers(-1, 3, 12), rng.integers(-1, 3, 40)
    for nd in (False, True):
        metrics = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, different_camera_only=nd)
        rows = ranked_lists(
            dist, q_pids, g_pids, q_cams, g_cams, query_indices=range(12), top_k=40,
            different_camera_only=nd,
        )  # fmt: skip
        for row in rows:
            q = row.query
            order, ranks, positives, ap = brute_force_ranking(
                dist[q], q_pids[q], q_cams[q], g_pids, g_cams, nd
            )
            np.testing.assert_array_equal(row.gallery, order)
            np.testing.assert_array_equal(row.ranks, ranks)
            np.testing.assert_array_equal(row.matches, positives)
            np.testing.assert_allclose(row.average_precision, ap, equal_nan=True)
        np.testing.assert_allclose(
            [r.average_precision for r in rows], metrics.average_precision, equal_nan=True
        )


def video_tables():
    """Frames of tracklets (tracklet, pid, camid, frames), the query's tracklets in the gallery.

    Frames are listed out of frame-number order, so "middle frame" needs the frame column.
    """
    tracks = [(0, 1, 0, 3), (1, 1, 1, 4), (2, 2, 0, 2), (3, 2, 2, 5), (4, 1, 0, 1)]
    tracks += [(5, 3, 1, 2), (6, -1, 1, 2), (7, 0, 2, 3)]
    records = []
    for tracklet, pid, cam, frames in tracks:
        for frame in reversed(range(1, frames + 1)):
            records.append((f"/v/{tracklet}_{frame}.jpg", pid, cam, "mars", tracklet, frame))
    gallery = make_table(records, "mars", video=True)
    query = gallery[gallery.tracklet.isin([0, 2, 3])].reset_index(drop=True)
    return query, gallery


def test_video_ranked_lists_are_the_protocols_tracklets():
    query, gallery = video_tables()
    rng = np.random.default_rng(0)
    g_feats = rng.normal(size=(len(gallery), 4)).astype(np.float32)
    q_feats = g_feats[gallery.tracklet.isin([0, 2, 3]).to_numpy()]
    ranking = rank_protocol(q_feats, g_feats, query, gallery, protocol="video", normalize=True)
    assert ranking.dist.shape == (3, 8)  # tracklets, not frames
    # The middle frame by frame number: tracklet 1 has frames 1-4 -> frame 2; 3 has 1-5 -> 3.
    assert ranking.gallery_table.path.tolist() == [
        "/v/0_2.jpg", "/v/1_2.jpg", "/v/2_1.jpg", "/v/3_3.jpg", "/v/4_1.jpg",
        "/v/5_1.jpg", "/v/6_1.jpg", "/v/7_2.jpg",
    ]  # fmt: skip

    # Brute force: mean-pool each tracklet, L2-normalise, euclidean distances, loop-ranked.
    def pooled(features, table):
        out = {}
        for t in dict.fromkeys(table.tracklet):
            mean = features[(table.tracklet == t).to_numpy()].mean(axis=0)
            out[t] = mean / np.linalg.norm(mean)
        return out

    q_pool, g_pool = pooled(q_feats, query), pooled(g_feats, gallery)
    labels = gallery.drop_duplicates("tracklet").set_index("tracklet")
    g_tracks = list(g_pool)
    g_pids = labels.loc[g_tracks, "pid"].to_numpy()
    g_cams = labels.loc[g_tracks, "camid"].to_numpy()
    rows = ranked_lists(
        ranking.dist, ranking.query_table.pid, ranking.gallery_table.pid,
        ranking.query_table.camid, ranking.gallery_table.camid, query_indices=[0, 1, 2], top_k=8,
    )  # fmt: skip
    expected_ap = []
    for row, q_track in zip(rows, q_pool, strict=True):
        d = [float(np.linalg.norm(q_pool[q_track] - g_pool[t])) for t in g_tracks]
        order, ranks, positives, ap = brute_force_ranking(
            d, labels.pid[q_track], labels.camid[q_track], g_pids, g_cams
        )
        np.testing.assert_array_equal(
            [g_tracks[g] for g in row.gallery], [g_tracks[g] for g in order]
        )
        np.testing.assert_array_equal(row.ranks, ranks)
        np.testing.assert_array_equal(row.matches, positives)
        assert row.average_precision == pytest.approx(ap)
        # The query's own tracklet is in the gallery at distance 0: shown first, ignored.
        assert g_tracks[row.gallery[0]] == q_track and row.ignored[0] and row.ranks[0] == 0
        expected_ap.append(ap)
    # The per-query AP behind the number the evaluation reports.
    np.testing.assert_allclose(ranking.results["market"].average_precision, expected_ap)
    row = evaluate(q_feats, g_feats, query, gallery, protocol="video", normalize=True)
    assert row["mAP"].iloc[0] == pytest.approx(np.mean(expected_ap))


def test_cuhk03_ranked_lists_show_the_full_list_its_map_is_computed_on(toy_gallery):
    dist, q_pids, g_pids, q_cams, g_cams = toy_gallery
    features_q, features_g = np.eye(2, 6), np.eye(6)
    query = pd.DataFrame({"pid": q_pids, "camid": q_cams})
    gallery = pd.DataFrame({"pid": g_pids, "camid": g_cams})
    ranking = rank_protocol(features_q, features_g, query, gallery, protocol="cuhk03")
    rows = ranked_lists(ranking.dist, q_pids, g_pids, q_cams, g_cams, query_indices=[0, 1], top_k=6)
    np.testing.assert_allclose(
        [r.average_precision for r in rows], ranking.results["market"].average_precision
    )
    for row in rows:
        _, ranks, _, ap = brute_force_ranking(
            ranking.dist[row.query], q_pids[row.query], q_cams[row.query], g_pids, g_cams
        )
        np.testing.assert_array_equal(row.ranks, ranks)
        assert row.average_precision == pytest.approx(ap)


def test_plot_refuses_frame_tables_and_draws_tracklets(tmp_path):
    query, gallery = video_tables()
    for table in (query, gallery):
        for path in table.path:
            cv2.imwrite(str(tmp_path / os.path.basename(path)), np.full((16, 8, 3), 90, np.uint8))
        table["path"] = [str(tmp_path / os.path.basename(p)) for p in table.path]
    g_feats = np.random.default_rng(1).normal(size=(len(gallery), 4))
    q_feats = g_feats[gallery.tracklet.isin([0, 2, 3]).to_numpy()]
    frame_dist = np.ones((len(query), len(gallery)))
    with pytest.raises(ReIDError, match="several rows \\(frames\\) per tracklet, e.g. tracklet 0"):
        plot_ranked_lists(frame_dist, query, gallery, tmp_path / "frames.png")
    assert not (tmp_path / "frames.png").exists()
    ranking = rank_protocol(q_feats, g_feats, query, gallery, protocol="video")
    out = plot_ranked_lists(
        ranking.dist, ranking.query_table, ranking.gallery_table, tmp_path / "video.png", top_k=8
    )
    image = cv2.imread(out)
    # Each query's own tracklet (and other ignored ones) is grey, the rest green or red.
    for colour in (HIT, MISS, IGNORED, QUERY):
        assert count_colour(image, colour) > 50, colour


def test_ranked_lists_can_leave_ignored_entries_out(tiny_dataset, tmp_path):
    dist, query, gallery = tiny_dataset
    out = plot_ranked_lists(
        dist, query, gallery, tmp_path / "kept.png", top_k=6, show_ignored=False
    )
    image = cv2.imread(out)
    # No grey frame (a frame is over a thousand pixels; a few grey text pixels can occur).
    assert count_colour(image, IGNORED) < 50
    assert count_colour(image, HIT) > 50 and count_colour(image, MISS) > 50
