import logging
import os

import pytest

from keras_reid.data import COLUMNS, load_dataset
from keras_reid.errors import ReIDError

from .fixtures import MARKET, write_tree


@pytest.fixture
def market_root(tmp_path):
    return write_tree(tmp_path / "market", MARKET)


def test_fixture_tree_pids_camids_and_paths(market_root):
    market = load_dataset("market1501", market_root)
    assert list(market.train.columns) == COLUMNS
    # Distractor (0000) and junk (-1) in train are skipped; 3 real images remain.
    assert market.train.pid.tolist() == [2, 2, 7]
    assert market.train.camid.tolist() == [0, 2, 5]
    assert market.query.pid.tolist() == [1, 3]
    assert market.query.camid.tolist() == [0, 3]
    # The gallery keeps junk (-1) and distractors (0) for the evaluation's rules.
    assert sorted(market.gallery.pid.tolist()) == [-1, 0, 1, 3]
    assert set(market.gallery.dataset) == {"market1501"}
    for path in market.gallery.path:
        assert os.path.isabs(path) and os.path.isfile(path)


def test_skipped_train_images_are_counted_in_the_log(market_root, caplog):
    with caplog.at_level(logging.INFO, logger="keras_reid.data"):
        load_dataset("market1501", market_root)
    assert "bounding_box_train: skipped 2 image(s)" in caplog.text


def test_missing_folder_names_it_and_the_layout(market_root):
    os.rename(market_root / "query", market_root / "queries")
    with pytest.raises(ReIDError, match=r"no folder 'query' under .*bounding_box_train/, query/"):
        load_dataset("market1501", market_root)


def test_bad_file_names_are_reported(market_root):
    (market_root / "query" / "IMG_0001.jpg").write_bytes(b"")
    with pytest.raises(ReIDError, match=r"1 file name\(s\) in .*query .*IMG_0001\.jpg"):
        load_dataset("market1501", market_root)


def test_unknown_option_lists_valid_ones(market_root):
    with pytest.raises(
        ReIDError,
        match=r"dataset 'market1501' takes no argument\(s\) split; it takes none besides root",
    ):
        load_dataset("market1501", market_root, split=3)


def test_real_crops(mini_market_root):
    market = load_dataset("market1501", mini_market_root)
    assert (len(market.train), len(market.query), len(market.gallery)) == (32, 32, 32)
    assert market.train.pid.nunique() == 16
    assert market.train.groupby("pid").size().eq(2).all()
    for table in market.splits().values():
        assert set(table.camid) == set(range(6))
    train_ids = set(market.train.pid)
    assert not train_ids & set(market.query.pid)
    assert not train_ids & set(market.gallery.pid)
    assert all(os.path.isfile(p) for p in market.query.path)
