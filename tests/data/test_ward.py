import logging
import os

import pytest

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError

from .fixtures import WARD_FRAMES, make_ward

N_IMAGES = sum(sum(counts) for counts in WARD_FRAMES.values())  # 23


def test_flat_camera_folders_all_train(tmp_path):
    ward = load_dataset("ward", make_ward(tmp_path))
    assert len(ward.train) == N_IMAGES == 23
    assert ward.query.empty and ward.gallery.empty
    assert ward.train.groupby("camid").size().tolist() == [8, 8, 7]
    assert sorted(set(ward.train.pid)) == [1, 2, 3, 4, 5, 6]
    row = ward.train[ward.train.path.str.endswith("camera_2/0002_00001.png")].iloc[0]
    assert (row.pid, row.camid) == (2, 1)


def test_id_folders_with_short_camera_names(tmp_path):
    ward = load_dataset("ward", make_ward(tmp_path, ("cam1", "Cam2", "cam_3"), id_folders=True))
    assert len(ward.train) == 23
    row = ward.train[ward.train.path.str.endswith("cam_3/0003/00001.png")].iloc[0]
    assert (row.pid, row.camid) == (3, 2)


def test_half_split(tmp_path):
    ward = load_dataset("ward", make_ward(tmp_path), split="half")
    assert set(ward.query.camid) == {0} and set(ward.gallery.camid) == {1, 2}
    test_ids = set(ward.query.pid)
    assert len(test_ids) == 3 and set(ward.gallery.pid) == test_ids
    assert set(ward.train.pid) == {1, 2, 3, 4, 5, 6} - test_ids
    assert len(ward.train) + len(ward.query) + len(ward.gallery) == 23
    again = load_dataset("ward", tmp_path, split="half")
    assert again.query.path.tolist() == ward.query.path.tolist()


def test_other_entries_are_ignored_and_logged(tmp_path, caplog):
    make_ward(tmp_path)
    (tmp_path / "README.txt").write_text("WARD")
    with caplog.at_level(logging.INFO, logger="keras_reid.data"):
        assert len(load_dataset("ward", tmp_path).train) == 23
    assert "ignored 1 entries" in caplog.text and "README.txt" in caplog.text


def test_errors(tmp_path):
    make_ward(tmp_path, ("camera_1", "camera_2"))
    with pytest.raises(ReIDError, match=r"found camera folder\(s\) \['camera_1', 'camera_2'\]"):
        load_dataset("ward", tmp_path)
    make_ward(tmp_path, ("camera_3",))
    os.makedirs(tmp_path / "camera_1" / "0001")
    with pytest.raises(ReIDError, match="camera_1 mixes images and id folders"):
        load_dataset("ward", tmp_path)
    os.rename(tmp_path / "camera_1" / "0001", tmp_path / "camera_1" / "alice")
    with pytest.raises(ReIDError, match=r"folder\(s\) alice in .*camera_1 are not integer"):
        load_dataset("ward", tmp_path)
    with pytest.raises(ReIDError, match="split must be 'all' or 'half'"):
        load_dataset("ward", tmp_path, split="third")


def test_bad_image_name(tmp_path):
    make_ward(tmp_path)
    (tmp_path / "camera_2" / "frame_0001.png").write_bytes(b"")
    with pytest.raises(ReIDError, match=r"1 file name\(s\) in .*camera_2 .*frame_0001.png"):
        load_dataset("ward", tmp_path)
