import pytest

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError

from .fixtures import DUKE, MARKET, write_tree


def test_pids_and_eight_cameras(tmp_path):
    duke = load_dataset("dukemtmc", write_tree(tmp_path, DUKE))
    assert duke.train.pid.tolist() == [2, 2, 5]
    assert duke.train.camid.tolist() == [0, 1, 7]  # c8 is camid 7
    assert duke.query.pid.tolist() == [11]
    assert duke.gallery.camid.tolist() == [6, 4]
    assert set(duke.train.dataset) == {"dukemtmc"}


def test_market_names_are_not_duke_names(tmp_path):
    with pytest.raises(ReIDError, match=r"dukemtmc: 5 file name\(s\) in .*bounding_box_train"):
        load_dataset("dukemtmc", write_tree(tmp_path, MARKET))


def test_missing_folder(tmp_path):
    write_tree(tmp_path, {"bounding_box_train": DUKE["bounding_box_train"]})
    with pytest.raises(ReIDError, match="dukemtmc: no folder 'query'"):
        load_dataset("dukemtmc", tmp_path)
