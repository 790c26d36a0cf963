import os

import pytest

from keras_reid.data import load_dataset
from keras_reid.data.dataset import half_split_ids
from keras_reid.errors import ReIDError

from .fixtures import VIPER_IDS, make_viper


@pytest.fixture
def viper_root(tmp_path):
    return make_viper(tmp_path / "VIPeR")


def test_split_zero_is_the_published_one(viper_root):
    viper = load_dataset("viper", viper_root)
    # Fixed once from default_rng(2018); a change here changes every user's split.
    assert sorted(set(viper.query.pid)) == [2, 7, 11, 20, 42]
    assert sorted(set(viper.train.pid)) == [0, 5, 13, 21, 30]
    assert len(viper.train) == 10 and set(viper.train.camid) == {0, 1}


def test_query_is_cam_a_and_gallery_cam_b_of_the_test_ids(viper_root):
    viper = load_dataset("viper", viper_root, split=4)
    assert set(viper.query.camid) == {0} and set(viper.gallery.camid) == {1}
    assert viper.query.pid.tolist() == viper.gallery.pid.tolist()
    assert viper.query.path.map(os.path.dirname).eq(str(viper_root / "cam_a")).all()
    assert not set(viper.train.pid) & set(viper.query.pid)
    assert set(viper.train.pid) | set(viper.query.pid) == set(VIPER_IDS)


def test_splits_are_deterministic_and_differ(viper_root):
    tests = [tuple(load_dataset("viper", viper_root, split=s).query.pid) for s in range(10)]
    assert tests == [tuple(load_dataset("viper", viper_root, split=s).query.pid) for s in range(10)]
    assert len(set(tests)) > 5


def test_real_size_halves():
    train, test = half_split_ids(range(632), 9, "viper")
    assert len(train) == len(test) == 316
    assert sorted(train + test) == list(range(632))


def test_id_missing_a_camera_is_named(viper_root):
    os.remove(viper_root / "cam_b" / "013_90.bmp")
    with pytest.raises(ReIDError, match=r"1 id\(s\) have an image in one camera only, e.g. 013"):
        load_dataset("viper", viper_root)


def test_errors(viper_root):
    with pytest.raises(ReIDError, match=r"viper: split must be in 0..9. Received: split=10"):
        load_dataset("viper", viper_root, split=10)
    os.rename(viper_root / "cam_b", viper_root / "camb")
    with pytest.raises(ReIDError, match="no folder 'cam_b' under .*cam_a/000_45.bmp"):
        load_dataset("viper", viper_root)
