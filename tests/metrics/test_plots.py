"""CMC and ranked-list figures: files written whole, frames coloured by outcome."""

import os

import cv2
import numpy as np
import pytest

from keras_reid.data import make_table
from keras_reid.errors import ReIDError
from keras_reid.metrics import plot_cmc, plot_ranked_lists, rank_metrics
from keras_reid.metrics.plots import HIT, IGNORED, MISS, QUERY, _choose_queries


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
