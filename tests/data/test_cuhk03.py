import os
import shutil

import cv2
import numpy as np
import pytest
from scipy.io.matlab import matfile_version

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError

from .fixtures import make_cuhk03_config, make_cuhk03_raw, write_image

# The fixture: pairs of 3, 2, 1, 1, 1 ids with 10 cells each (80); labeled
# (1, 2) has 3 empty cells (4, 5, 10), detected (3, 1) one (9).
N_LABELED, N_DETECTED = 77, 79


@pytest.fixture
def raw_root(tmp_path):
    images = make_cuhk03_raw(tmp_path)
    for variant in ("labeled", "detected"):
        make_cuhk03_config(tmp_path, variant, images[variant])
    return tmp_path


def test_fixture_is_a_matlab_v73_file(raw_root):
    assert matfile_version(str(raw_root / "cuhk-03.mat")) == (2, 0)


def test_new_protocol_labeled(raw_root):
    cuhk = load_dataset("cuhk03", raw_root)
    # Test ids (1,3), (2,2), (4,1), (5,1) with 10 images each: images 01 and 06 query.
    assert len(cuhk.train) + len(cuhk.query) + len(cuhk.gallery) == N_LABELED
    assert (len(cuhk.train), len(cuhk.query), len(cuhk.gallery)) == (37, 8, 32)
    assert sorted(set(cuhk.train.pid)) == [1001, 1002, 2001, 3001]
    assert sorted(set(cuhk.query.pid)) == [1003, 2002, 4001, 5001]
    row = cuhk.query[cuhk.query.path.str.endswith("2_002_2_06.png")].iloc[0]
    assert (row.pid, row.camid) == (2002, 3)  # pair 2, second camera
    assert sorted(set(cuhk.gallery.camid)) == [0, 1, 2, 3, 6, 7, 8, 9]
    assert os.path.dirname(cuhk.train.path[0]) == str(raw_root / "images_labeled")


def test_extracted_images_are_the_stored_ones(raw_root):
    stored = make_cuhk03_raw(raw_root / "copy")["detected"]
    load_dataset("cuhk03", raw_root / "copy", variant="detected", protocol="classic")
    folder = raw_root / "copy" / "images_detected"
    assert sorted(os.listdir(folder)) == sorted(stored)
    assert len(stored) == N_DETECTED
    for name in ("1_001_1_01.png", "3_001_2_10.png", "5_001_2_07.png"):
        # H x W x 3 RGB, not transposed, not BGR.
        np.testing.assert_array_equal(cv2.imread(str(folder / name))[..., ::-1], stored[name])
    assert not [e for e in os.listdir(raw_root / "copy") if e.startswith(".images")]


def test_second_load_does_not_extract_again(raw_root):
    load_dataset("cuhk03", raw_root)
    folder = raw_root / "images_labeled"
    before = {name: os.stat(folder / name).st_mtime_ns for name in os.listdir(folder)}
    os.utime(folder / "1_001_1_01.png", ns=(1, 1))  # a rewrite would reset this
    before["1_001_1_01.png"] = 1
    load_dataset("cuhk03", raw_root)
    after = {name: os.stat(folder / name).st_mtime_ns for name in os.listdir(folder)}
    assert after == before
    assert not (raw_root / "images_detected").exists()  # only the asked-for variant


def test_classic_split_query_camera_one_gallery_camera_two(raw_root):
    # Classic test set 1 of the fixture is [(1, 2), (3, 1)]; labeled (1, 2) lacks
    # images 4, 5 (camera 1) and 10 (camera 2).
    cuhk = load_dataset("cuhk03", raw_root, protocol="classic", split=1)
    assert sorted(set(cuhk.query.pid)) == sorted(set(cuhk.gallery.pid)) == [1002, 3001]
    assert (len(cuhk.query), len(cuhk.gallery), len(cuhk.train)) == (8, 9, N_LABELED - 17)
    assert set(cuhk.query.camid) == {0, 4} and set(cuhk.gallery.camid) == {1, 5}
    assert not set(cuhk.train.pid) & {1002, 3001}
    split0 = load_dataset("cuhk03", raw_root, protocol="classic", split=0)
    assert sorted(set(split0.query.pid)) == [1003, 2002]


def test_torchreid_style_extracted_images_without_the_raw_file(tmp_path):
    names = [
        f"{c}_{p:03d}_{1 if i <= 5 else 2}_{i:02d}.png"
        for c, p in [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1), (4, 1), (5, 1)]
        for i in range(1, 11)
    ]
    for name in names:
        write_image(tmp_path / "images_labeled" / name)
    make_cuhk03_config(tmp_path, "labeled", names)
    cuhk = load_dataset("cuhk03", tmp_path)
    assert (len(cuhk.train), len(cuhk.query), len(cuhk.gallery)) == (40, 8, 32)
    with pytest.raises(ReIDError, match="no cuhk-03.mat .*classic.* reads its 20 test sets"):
        load_dataset("cuhk03", tmp_path, protocol="classic")


def test_raw_file_in_cuhk03_release_folder(tmp_path):
    make_cuhk03_raw(tmp_path, "cuhk03_release")
    cuhk = load_dataset("cuhk03", tmp_path, protocol="classic", split=0)
    assert len(cuhk.train) + len(cuhk.query) + len(cuhk.gallery) == N_LABELED


def test_errors(raw_root, tmp_path):
    with pytest.raises(ReIDError, match="variant must be 'labeled' or 'detected'"):
        load_dataset("cuhk03", raw_root, variant="manual")
    with pytest.raises(ReIDError, match="protocol must be"):
        load_dataset("cuhk03", raw_root, protocol="old")
    with pytest.raises(ReIDError, match="the new protocol has one split"):
        load_dataset("cuhk03", raw_root, split=2)
    with pytest.raises(ReIDError, match=r"has 20 splits \(0-19\). Received: split=20"):
        load_dataset("cuhk03", raw_root, protocol="classic", split=20)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReIDError, match=r"no cuhk-03\.mat under .*empty"):
        load_dataset("cuhk03", empty)
    os.remove(raw_root / "cuhk03_new_protocol_config_detected.mat")
    with pytest.raises(ReIDError, match="no file .*cuhk03_new_protocol_config_detected.mat"):
        load_dataset("cuhk03", raw_root, variant="detected")


def test_incomplete_cache_is_reported(raw_root):
    load_dataset("cuhk03", raw_root)
    os.remove(raw_root / "images_labeled" / "2_001_1_03.png")
    with pytest.raises(ReIDError, match=r"1 image\(s\) of .* are not in .*delete"):
        load_dataset("cuhk03", raw_root)
    shutil.rmtree(raw_root / "images_labeled")
    assert len(load_dataset("cuhk03", raw_root).train) == 37
