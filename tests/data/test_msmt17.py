import os

import pytest

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError

from .fixtures import make_msmt17


def test_v1_lists(tmp_path):
    msmt = load_dataset("msmt17", make_msmt17(tmp_path))
    assert msmt.train.pid.tolist() == [0, 1]
    assert msmt.train.camid.tolist() == [0, 14]  # cameras 01 and 15
    assert msmt.train.path[1] == str(
        tmp_path / "train" / "0001" / "0001_003_15_0303noon_0123_1.jpg"
    )
    assert msmt.query.pid.tolist() == [0] and msmt.query.camid.tolist() == [1]
    assert msmt.gallery.camid.tolist() == [4, 13]
    assert msmt.gallery.path.str.contains(os.sep + "test" + os.sep).all()


def test_val_merges_into_train(tmp_path):
    msmt = load_dataset("msmt17", make_msmt17(tmp_path), with_val=True)
    assert msmt.train.pid.tolist() == [0, 1, 1]
    assert msmt.train.camid.tolist()[-1] == 6


def test_v2_mask_folders(tmp_path):
    msmt = load_dataset("msmt17", make_msmt17(tmp_path, v2=True))
    assert msmt.train.path.str.contains("mask_train_v2").all()
    assert msmt.gallery.path.str.contains("mask_test_v2").all()


def test_malformed_line_names_file_and_line(tmp_path):
    make_msmt17(tmp_path)
    with open(tmp_path / "list_gallery.txt", "a") as handle:
        handle.write("0003/0003_000_xx_0113noon_0005_0.jpg 3\n")
    with pytest.raises(ReIDError, match=r"list_gallery.txt line 3 is not .*0003_000_xx"):
        load_dataset("msmt17", tmp_path)


def test_missing_image_and_folder(tmp_path):
    make_msmt17(tmp_path)
    os.remove(tmp_path / "test" / "0000" / "0000_000_02_0113morning_0001_0.jpg")
    with pytest.raises(ReIDError, match=r"1 image\(s\) of list_query.txt are not under"):
        load_dataset("msmt17", tmp_path)
    os.rename(tmp_path / "train", tmp_path / "images")
    with pytest.raises(ReIDError, match="no folder 'train' or 'mask_train_v2'"):
        load_dataset("msmt17", tmp_path)
