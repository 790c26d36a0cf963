"""CUHK03 crops in train/ and val/ folders: labels, the classic query/gallery, bad trees."""

import os

import pytest
from console import run

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError

from .fixtures import write_tree

# train/: 0000 on both cameras, 0001 on the first only (kept for training);
# val/: 0000 and 0002 on both cameras, 0001 on the second only (left out).
TREE = {
    "train": ["0000_00.jpg", "0000_01.jpg", "0000_05.jpg", "0001_00.jpg", "0001_04.jpg"],
    "val": [
        "0000_00.jpg",
        "0000_06.jpg",
        "0000_09.jpg",
        "0001_07.jpg",
        "0002_03.jpg",
        "0002_05.jpg",
    ],
}


@pytest.fixture
def root(tmp_path):
    return write_tree(str(tmp_path / "cuhk03"), TREE)


def records(table):
    return sorted(
        (os.path.relpath(path, os.path.dirname(os.path.dirname(path))), pid, camid)
        for path, pid, camid in zip(table.path, table.pid, table.camid, strict=True)
    )


def test_labels_and_the_classic_split_of_a_fixture_tree(root):
    data = load_dataset("cuhk03_folders", root)
    assert records(data.train) == [
        ("train/0000_00.jpg", 0, 0),
        ("train/0000_01.jpg", 0, 0),
        ("train/0000_05.jpg", 0, 1),
        ("train/0001_00.jpg", 1, 0),
        ("train/0001_04.jpg", 1, 0),
    ]
    # val/'s people are others: 10000 + their number, never a train pid.
    assert records(data.query) == [("val/0000_00.jpg", 10000, 0), ("val/0002_03.jpg", 10002, 0)]
    assert records(data.gallery) == [
        ("val/0000_06.jpg", 10000, 1),
        ("val/0000_09.jpg", 10000, 1),
        ("val/0002_05.jpg", 10002, 1),
    ]
    assert set(data.train.dataset) == {"cuhk03_folders"}


def test_bad_trees_are_one_line_errors_naming_the_folder_or_file(root, tmp_path):
    os.rename(os.path.join(root, "val"), os.path.join(root, "moved"))
    with pytest.raises(ReIDError, match=r"no folder 'val' under .*cuhk03 \(expected train/"):
        load_dataset("cuhk03_folders", root)
    os.makedirs(os.path.join(root, "val"))
    with pytest.raises(ReIDError, match=r"no images in .*cuhk03/val .*train/ and val/"):
        load_dataset("cuhk03_folders", root)
    write_tree(root, {"val": ["0003_00.jpg", "0003_10.jpg", "12_00.jpg"]})
    with pytest.raises(ReIDError, match=r"2 file name\(s\) in .*val do not match .* 0003_10.jpg"):
        load_dataset("cuhk03_folders", root)
    os.remove(os.path.join(root, "val", "0003_10.jpg"))
    os.remove(os.path.join(root, "val", "12_00.jpg"))
    with pytest.raises(ReIDError, match=r"no person in .*/val has images from both cameras"):
        load_dataset("cuhk03_folders", root)


def test_datasets_check_through_the_console_script(root, tmp_path):
    code, out, err = run(["datasets", f"cuhk03_folders:{root}", "--check"])
    assert code == 0, err
    # The person of val/ seen by one camera is counted on stderr, by number.
    assert "1 person(s) of" in err and "left out of query and gallery (0001)" in err
    lines = {tuple(line.split()[1:5]) for line in out.splitlines()}
    assert {("train", "2", "5", "2"), ("query", "2", "2", "1"), ("gallery", "2", "3", "1")} <= lines
    code, _, err = run(["datasets", f"cuhk03_folders:{tmp_path}/none"], stderr=tmp_path / "e.txt")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no folder" in err


def test_the_real_labelled_crops(cuhk03_labeled_root):
    data = load_dataset("cuhk03_folders", cuhk03_labeled_root)
    assert (data.train.pid.nunique(), len(data.train)) == (743, 7239)
    assert data.query.pid.nunique() == data.gallery.pid.nunique() == 100
    assert len(data.query) + len(data.gallery) == 938
    assert set(data.query.camid) == {0} and set(data.gallery.camid) == {1}
    assert not set(data.train.pid) & set(data.query.pid)
    names = data.query.path.map(os.path.basename).str[5:7].astype(int)
    assert names.between(0, 4).all()
