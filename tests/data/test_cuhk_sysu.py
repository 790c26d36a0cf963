import os
import shutil

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics import rank_metrics

from .fixtures import (
    SYSU,
    SYSU_TEST,
    SYSU_TRAIN,
    make_cuhk_sysu_release,
    write_image,
    write_tree,
)


def test_crops_train_only_without_cameras(tmp_path):
    sysu = load_dataset("cuhk_sysu", write_tree(tmp_path, {"cropped_images": SYSU}))
    assert sorted(sysu.train.pid.tolist()) == [1, 1, 5, 11422]
    assert set(sysu.train.camid) == {-1}
    assert sysu.query.empty and sysu.gallery.empty
    assert list(sysu.query.columns) == list(sysu.train.columns)


def test_errors(tmp_path):
    with pytest.raises(
        ReIDError, match="neither 'annotation' nor 'cropped_images' .*p\\{pid\\}_s\\{scene\\}"
    ):
        load_dataset("cuhk_sysu", write_tree(tmp_path, {"Image/SSM": ["s1.jpg"]}))
    write_tree(tmp_path, {"cropped_images": SYSU + ["s1.jpg"]})
    with pytest.raises(ReIDError, match=r"1 file name\(s\) .* e.g. s1.jpg"):
        load_dataset("cuhk_sysu", tmp_path)


# --- the official release: Train.mat, TestG50.mat and the scenes ----------------------------

# By hand from fixtures.SYSU_TRAIN / SYSU_TEST: (pid, crop name) per split.
TRAIN = [
    (3, "p3_s1_2_4_10_20.png"),
    (3, "p3_s2_20_10_12_30.png"),
    (8, "p8_s2_1_1_8_16.png"),
    (8, "p8_s3_5_6_9_18.png"),
]
QUERY = [(5, "p5_s4_0_0_10_24.png"), (11, "p11_s5_20_2_15_30.png"), (12, "p12_s9_10_10_10_20.png")]
# Only scenes holding the query's person give a crop; s7, s4, s9, s1 (distractors) give none.
GALLERY = [
    (5, "p5_s5_3_4_10_20.png"),
    (5, "p5_s6_28_20_12_28.png"),
    (11, "p11_s8_6_8_10_22.png"),
    (12, "p12_s6_0_5_9_20.png"),
    (12, "p12_s8_30_30_11_19.png"),
]


def rows(table):
    return [(pid, os.path.basename(path)) for pid, path in zip(table.pid, table.path, strict=True)]


@pytest.fixture
def release(tmp_path):
    make_cuhk_sysu_release(tmp_path)
    return tmp_path


def test_release_protocol_tables(release):
    sysu = load_dataset("cuhk_sysu", release)
    assert rows(sysu.train) == TRAIN
    assert rows(sysu.query) == QUERY
    assert rows(sysu.gallery) == GALLERY
    for split, table in sysu.splits().items():
        assert list(table.columns) == ["path", "pid", "camid", "dataset"]
        assert set(table.camid) == {-1} and set(table.dataset) == {"cuhk_sysu"}
        assert {os.path.dirname(p) for p in table.path} == {str(release / "reid_crops" / split)}
    assert not set(sysu.query.path) & set(sysu.gallery.path)
    assert sysu.check_query_matches() == 0
    # No leftover temporary folder beside the crops.
    assert sorted(os.listdir(release)) == ["Image", "annotation", "reid_crops"]


def test_crops_are_the_annotated_boxes(release):
    load_dataset("cuhk_sysu", release)
    boxes = {"query": [(q[0], q[1], q[2]) for q in SYSU_TEST]}
    boxes["gallery"] = [(q[0], s, b) for q in SYSU_TEST for s, b in q[3] if b is not None]
    boxes["train"] = [(p, s, b) for p, apps in SYSU_TRAIN.items() for s, b in apps]
    for split, items in boxes.items():
        folder = release / "reid_crops" / split
        assert len(os.listdir(folder)) == len(items)
        for idname, scene, (x, y, w, h) in items:
            stem = os.path.splitext(scene)[0]
            crop = cv2.imread(str(folder / f"{idname}_{stem}_{x}_{y}_{w}_{h}.png"))
            expected = cv2.imread(str(release / "Image" / "SSM" / scene))[y : y + h, x : x + w]
            assert crop.shape == (min(h, 48 - y), min(w, 40 - x), 3)
            np.testing.assert_array_equal(crop, expected)


def test_crops_are_extracted_once_and_scenes_no_longer_needed(release):
    load_dataset("cuhk_sysu", release)
    folder = release / "reid_crops" / "gallery"
    os.utime(folder / "p5_s5_3_4_10_20.png", ns=(1, 1))  # a rewrite would reset this
    shutil.rmtree(release / "Image")
    sysu = load_dataset("cuhk_sysu", release)
    assert rows(sysu.gallery) == GALLERY
    assert os.stat(folder / "p5_s5_3_4_10_20.png").st_mtime_ns == 1


def test_release_wins_over_torchreid_crops(release):
    write_tree(release, {"cropped_images": SYSU})
    sysu = load_dataset("cuhk_sysu", release)
    assert rows(sysu.train) == TRAIN and len(sysu.query) == 3


def test_unknown_cameras_rank_every_gallery_crop(release):
    # Query p5 against the five gallery crops at hand-picked distances: its two
    # crops (rows 0, 1) rank 1st and 3rd, so AP = (1/1 + 2/3) / 2; camid -1 on
    # both sides must not make the Market rule drop them as "same camera".
    sysu = load_dataset("cuhk_sysu", release)
    dist = np.array([[0.1, 0.5, 0.3, 0.9, 0.8]])
    result = rank_metrics(
        dist, sysu.query.pid[:1], sysu.gallery.pid, sysu.query.camid[:1], sysu.gallery.camid
    )
    assert result.num_valid_queries == 1
    assert result.mAP == pytest.approx((1 + 2 / 3) / 2)


def test_release_errors(tmp_path):
    make_cuhk_sysu_release(tmp_path / "no_test", write=("Train",))
    with pytest.raises(ReIDError, match=r"no file .*train_test/TestG50\.mat"):
        load_dataset("cuhk_sysu", tmp_path / "no_test")
    make_cuhk_sysu_release(tmp_path / "no_train", write=("TestG50",))
    with pytest.raises(ReIDError, match=r"no file .*train_test/Train\.mat"):
        load_dataset("cuhk_sysu", tmp_path / "no_train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReIDError, match="neither 'annotation' nor 'cropped_images'"):
        load_dataset("cuhk_sysu", tmp_path / "empty")


@pytest.mark.parametrize(
    "content, expected",
    [
        (np.eye(3), r"expected a struct with field\(s\) Query, Gallery"),
        ({"Query": np.eye(2), "Gallery": np.eye(2)}, r"struct with field\(s\) imname"),
        (
            {
                "Query": {"imname": "s4.jpg", "idlocate": [[0, 0, 5]], "ishard": 0, "idname": "p5"},
                "Gallery": np.eye(2),
            },
            r"idlocate as 4 numbers",
        ),
        (
            {
                "Query": {
                    "imname": "s4.jpg",
                    "idlocate": [[0, 0, 5, 5]],
                    "ishard": 0,
                    "idname": "5",
                },
                "Gallery": np.eye(2),
            },
            r"idname as p<number> \(got '5'\)",
        ),
    ],
)
def test_test_mat_with_the_wrong_structure(release, content, expected):
    path = release / "annotation" / "test" / "train_test" / "TestG50.mat"
    savemat(path, {"TestG50": content})
    with pytest.raises(
        ReIDError, match=f"TestG50 in .*TestG50.mat is not the release's .*{expected}"
    ):
        load_dataset("cuhk_sysu", release)
    assert not (release / "reid_crops").exists()


def test_train_mat_with_the_wrong_structure(release):
    savemat(release / "annotation" / "test" / "train_test" / "Train.mat", {"Train": np.eye(2)})
    with pytest.raises(ReIDError, match=r"Train in .*Train.mat is not the release's .*idname"):
        load_dataset("cuhk_sysu", release)
    savemat(release / "annotation" / "test" / "train_test" / "Train.mat", {"Person": np.eye(2)})
    with pytest.raises(ReIDError, match=r"has no variable\(s\) Train; found: Person"):
        load_dataset("cuhk_sysu", release)


def test_test_person_in_train_is_refused(tmp_path):
    make_cuhk_sysu_release(tmp_path, train={**SYSU_TRAIN, "p11": [("s3.jpg", (1, 1, 5, 5))]})
    with pytest.raises(
        ReIDError, match=r"1 person\(s\) are both in Train.mat and TestG50.mat, e.g. p11"
    ):
        load_dataset("cuhk_sysu", tmp_path)


def test_missing_and_damaged_scenes_are_named_and_nothing_is_cached(release):
    scenes = release / "Image" / "SSM"
    os.remove(scenes / "s7.jpg")  # a distractor: not needed, no error
    os.remove(scenes / "s8.jpg")
    with pytest.raises(
        ReIDError, match=r"1 scene image\(s\) of the annotation are not in .*s8\.jpg"
    ):
        load_dataset("cuhk_sysu", release)
    write_image(scenes / "s8.jpg", 48, 40)
    (scenes / "s3.jpg").write_bytes(b"not a jpeg")
    data = (scenes / "s6.jpg").read_bytes()
    (scenes / "s6.jpg").write_bytes(data[: len(data) - 10])  # a cut download
    (scenes / "s9.jpg").write_bytes(b"")
    with pytest.raises(
        ReIDError,
        match=r"3 scene image\(s\) .* cannot be read, e.g. s3.jpg \(not a readable image\), "
        r"s6.jpg \(not a readable image\), s9.jpg \(empty file\); replace them",
    ):
        load_dataset("cuhk_sysu", release)
    assert sorted(os.listdir(release)) == ["Image", "annotation"]


def test_box_outside_its_scene(tmp_path):
    test = [("p5", "s4.jpg", (45, 0, 10, 24), [("s5.jpg", (3, 4, 10, 20))])]
    make_cuhk_sysu_release(tmp_path, test=test)
    with pytest.raises(ReIDError, match=r"box .*\(45, 0, 10, 24\) of p5 lies outside the 40x48"):
        load_dataset("cuhk_sysu", tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["Image", "annotation"]


def test_incomplete_crops_folder_is_reported(release):
    load_dataset("cuhk_sysu", release)
    os.remove(release / "reid_crops" / "query" / "p11_s5_20_2_15_30.png")
    with pytest.raises(ReIDError, match=r"1 crop\(s\) .* e.g. p11_s5_20_2_15_30.png; delete"):
        load_dataset("cuhk_sysu", release)
    shutil.rmtree(release / "reid_crops")
    assert rows(load_dataset("cuhk_sysu", release).query) == QUERY
