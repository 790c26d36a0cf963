"""SynthReID: determinism, Market layout and counts, safe writing, registry cache."""

import dataclasses
import json
import os
import re

import cv2
import numpy as np
import pandas as pd
import pytest

from keras_reid.data import synthreid as synthetic
from keras_reid.data.dataset import DATASETS, load_dataset
from keras_reid.data.market1501 import read_market_layout
from keras_reid.data.synthreid import generation
from keras_reid.errors import ReIDError

IDS = 12
SIZE = (64, 32)
NAME = re.compile(r"\d{4}_c[1-9]s1_\d{6}_00\.jpg")


def file_bytes(root):
    """{relative path: bytes} of every file under ``root``."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as file:
                found[os.path.relpath(path, root)] = file.read()
    return found


@pytest.fixture(scope="module")
def synth_a(tmp_path_factory):
    return synthetic.generate(
        "synth-a", tmp_path_factory.mktemp("gen") / "synth-a", seed=3, ids=IDS, size=SIZE
    )


def test_same_seed_gives_identical_bytes_whatever_the_workers(synth_a, tmp_path):
    one = synthetic.generate("synth-a", tmp_path / "one", seed=3, ids=IDS, size=SIZE, workers=1)
    assert file_bytes(one) == file_bytes(synth_a)  # the fixture used the default pool


def test_another_seed_gives_other_images(synth_a, tmp_path):
    other = file_bytes(synthetic.generate("synth-a", tmp_path / "o", seed=4, ids=IDS, size=SIZE))
    first = file_bytes(synth_a)
    assert first[synthetic.META_FILE] != other[synthetic.META_FILE]
    assert {k: v for k, v in first.items() if k in other} != {
        k: v for k, v in other.items() if k in first
    }


def test_layout_and_counts_follow_the_preset_spec(synth_a):
    spec = synthetic.PRESETS["synth-a"]
    cameras = len(spec.cameras)
    low_cams, high_cams = spec.cameras_per_id
    low_images, high_images = spec.images_per_camera
    data = read_market_layout(synth_a, "synth-a")

    for split in synthetic.SPLITS:
        names = os.listdir(os.path.join(synth_a, split))
        assert names and all(NAME.fullmatch(n) for n in names)
    image = cv2.imread(data.train.path[0])
    assert image.shape == (64, 32, 3)
    assert set(data.train.dataset) == {"synth-a"}

    # Half the ids train, the other half test; no id in both.
    test = data.gallery[data.gallery.pid > 0]
    assert data.train.pid.nunique() == IDS // 2
    assert set(data.query.pid) <= set(test.pid)
    assert test.pid.nunique() == IDS - IDS // 2
    assert not set(data.train.pid) & set(test.pid)
    assert set(data.train.pid) | set(test.pid) == set(range(1, IDS + 1))

    # Each id: low..high cameras of the preset, low..high images in each.
    people = pd.concat([data.train, data.query, test])
    per_id_camera = people.groupby(["pid", "camid"]).size()
    assert per_id_camera.between(low_images, high_images).all()
    assert per_id_camera.groupby(level="pid").size().between(low_cams, high_cams).all()
    assert set(data.train.camid) <= set(range(cameras))

    # Queries: one per (id, camera) for a subset of its cameras, each with a
    # gallery image of the same id from another camera.
    assert not data.query.duplicated(["pid", "camid"]).any()
    for pid, camid in zip(data.query.pid, data.query.camid, strict=True):
        assert ((test.pid == pid) & (test.camid != camid)).any()

    # Distractors (pid 0) in the gallery only: spec.distractors per test id.
    assert (data.gallery.pid == 0).sum() == round(spec.distractors * (IDS - IDS // 2))
    assert (data.gallery.pid >= 0).all()

    with open(os.path.join(synth_a, synthetic.META_FILE)) as file:
        meta = json.load(file)
    assert (meta["preset"], meta["seed"], meta["ids"], meta["size"]) == (
        "synth-a",
        3,
        IDS,
        [64, 32],
    )
    assert meta["counts"] == {
        "bounding_box_train": len(data.train),
        "query": len(data.query),
        "bounding_box_test": len(data.gallery),
    }


def test_refuses_to_overwrite_unless_asked(synth_a, tmp_path):
    with pytest.raises(ReIDError, match="overwrite=True") as error:
        synthetic.generate("synth-a", synth_a, seed=3, ids=IDS, size=SIZE)
    assert str(synth_a) in str(error.value)

    root = synthetic.generate("synth-a", tmp_path / "twice", seed=5, ids=IDS, size=SIZE)
    synthetic.generate("synth-c", root, seed=5, ids=IDS, size=SIZE, overwrite=True)
    assert synthetic.read_meta(root)["preset"] == "synth-c"
    assert not [n for n in os.listdir(tmp_path) if n != "twice"]  # no temp or old folder left

    # A folder that is not a SynthReID generation is never deleted.
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ReIDError, match="not a SynthReID folder"):
        synthetic.generate("synth-a", precious, ids=IDS, size=SIZE, overwrite=True)
    assert (precious / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failure_leaves_nothing_behind(tmp_path, monkeypatch, workers):
    real_write = generation._write_jpeg
    calls = []

    def failing_write(path, image, quality):
        calls.append(path)
        if len(calls) > 20:  # in each worker process (fork copies the patch)
            raise OSError("disk full")
        real_write(path, image, quality)

    monkeypatch.setattr(generation, "_write_jpeg", failing_write)
    with pytest.raises(OSError, match="disk full"):
        synthetic.generate("synth-b", tmp_path / "out", ids=IDS, size=SIZE, workers=workers)
    assert os.listdir(tmp_path) == []


def test_bad_arguments_name_the_value(tmp_path):
    with pytest.raises(ReIDError, match="synth-a, synth-b, synth-c"):
        synthetic.generate("synth-z", tmp_path / "x")
    with pytest.raises(ReIDError, match=r"size=\(10, 5\)"):
        synthetic.generate("synth-a", tmp_path / "x", size=(10, 5))
    with pytest.raises(ReIDError, match="size='big'"):
        synthetic.generate("synth-a", tmp_path / "x", size="big")
    with pytest.raises(ReIDError, match="ids=2"):
        synthetic.generate("synth-a", tmp_path / "x", ids=2)
    with pytest.raises(ReIDError, match="ids=12.5"):
        synthetic.generate("synth-a", tmp_path / "x", ids=12.5)
    with pytest.raises(ReIDError, match="seed=-1"):
        synthetic.generate("synth-a", tmp_path / "x", seed=-1)
    with pytest.raises(ReIDError, match="cameras_per_id"):
        synthetic.PresetSpec(
            name="tiny",
            description="",
            cameras=(synthetic.CameraSpec("street"), synthetic.CameraSpec("night")),
            palette=synthetic.PRESETS["synth-a"].palette,
            cameras_per_id=(1, 2),
        )
    assert not os.path.exists(tmp_path / "x")


def test_registry_generates_once_into_the_cache(tmp_path, monkeypatch):
    assert {"synth-a", "synth-b", "synth-c", "synth-d"} <= set(DATASETS.names())
    monkeypatch.setenv("KERAS_REID_HOME", str(tmp_path))
    data = load_dataset("synth-b", ids=IDS, size=SIZE)
    # Keyed by the renderer: opencv-<its build of cv2's version>-numpy-<version>.
    (renderer,) = os.listdir(tmp_path / "synthreid")
    assert renderer.startswith(f"opencv-{cv2.__version__}") and renderer.endswith(
        f"-numpy-{np.__version__}"
    )
    root = tmp_path / "synthreid" / renderer / "synth-b-seed0-ids12-64x32"
    assert synthetic.read_meta(root)["preset"] == "synth-b"
    assert data.name == "synth-b" and set(data.query.dataset) == {"synth-b"}
    assert data.train.path[0].startswith(str(root))

    # The second load reads the cache: generating again would fail here.
    def no_generate(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(generation, "generate", no_generate)
    again = load_dataset("synth-b", ids="12", size="64x32")
    assert again.train.equals(data.train)

    # A folder holding another generation is an error, not a silent mix-up.
    with pytest.raises(ReIDError, match="delete the folder"):
        load_dataset("synth-b", root=str(root), seed=1, ids=IDS, size=SIZE)


def test_a_changed_preset_is_regenerated_in_the_cache_and_refused_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_REID_HOME", str(tmp_path))
    before = load_dataset("synth-b", ids=IDS, size=SIZE)
    given = tmp_path / "given"
    load_dataset("synth-b", root=str(given), ids=IDS, size=SIZE)
    # The same name, other people: more distractors per test identity.
    changed = dataclasses.replace(synthetic.PRESETS["synth-b"], distractors=2.0)
    monkeypatch.setitem(synthetic.PRESETS, "synth-b", changed)

    after = load_dataset("synth-b", ids=IDS, size=SIZE)
    assert after.train.path[0] == before.train.path[0]  # the same cache folder ...
    assert (after.gallery.pid == 0).sum() > (before.gallery.pid == 0).sum()  # ... regenerated
    root = synthetic.cache_root("synth-b", ids=IDS, size=SIZE)
    assert synthetic.read_meta(root)["spec_sha256"] == synthetic.spec_fingerprint(changed)
    with pytest.raises(ReIDError, match="is not a SynthReID generation with .*delete the folder"):
        load_dataset("synth-b", root=str(given), ids=IDS, size=SIZE)

    # A folder written before generations recorded the fingerprint is judged without it.
    meta = json.loads((given / synthetic.META_FILE).read_text())
    del meta["spec_sha256"]
    (given / synthetic.META_FILE).write_text(json.dumps(meta))
    load_dataset("synth-b", root=str(given), ids=IDS, size=SIZE)


def test_registry_generates_into_a_given_root(tmp_path):
    data = load_dataset("synth-c", root=str(tmp_path / "c"), ids=IDS, size=SIZE)
    assert synthetic.read_meta(tmp_path / "c")["ids"] == IDS
    assert data.train.camid.max() < len(synthetic.PRESETS["synth-c"].cameras)


def test_target_cameras_come_from_other_scenes():
    backgrounds = {
        name: {camera.background for camera in spec.cameras}
        for name, spec in synthetic.PRESETS.items()
    }
    assert not backgrounds["synth-b"] & (backgrounds["synth-a"] | backgrounds["synth-c"])
