"""One-line messages for unreadable files, output paths, version folders and shards.

Through the installed console script, as a user meets them: a config nobody
may read, a report of damaged images in both query and gallery, an ``--out``
under a file for every command that writes, a full disk under an export,
version folders TF Serving would not serve, and the rows of a missing shard.
"""

import contextlib
import os
import shutil

import keras
import pytest
import yaml

from keras_reid.serving.gallery import embed_split
from tests.console import finish, run, start
from tests.data.fixtures import write_image
from tests.faults.damage import DAMAGE, damage, unprivileged
from tests.faults.filesystems import tmpfs

# Five gallery rows: with --batch-size 2 they are 3 batches, and shard 1 of 2
# holds batches 1..2, i.e. rows 2, 3 and 4.
GALLERY = [
    "0001_c2s1_000301_01.jpg",
    "0001_c3s1_000302_01.jpg",
    "0002_c2s1_000401_01.jpg",
    "0002_c3s1_000402_01.jpg",
    "0003_c2s1_000501_01.jpg",
]
TREE = {
    "bounding_box_train": [
        "0004_c1s1_000101_01.jpg",
        "0004_c2s1_000102_01.jpg",
        "0005_c1s1_000103_01.jpg",
        "0005_c2s1_000104_01.jpg",
    ],
    "query": ["0001_c1s1_000201_00.jpg", "0002_c1s1_000202_00.jpg"],
    "bounding_box_test": GALLERY,
}
FIX = "keras-reid datasets NAME:ROOT --check lists them all"


def tiny_model():
    """32x16 images -> "embedding" (8-d) and a one-level "attention" map (1, 32, 16)."""
    images = keras.Input((32, 16, 3), name="images")
    x = keras.layers.Rescaling(1 / 255)(images)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    embedding = keras.layers.Dense(8, name="embedding")(keras.layers.GlobalAveragePooling2D()(x))
    maps = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    attention = keras.layers.Permute((3, 1, 2), name="attention")(maps)
    return keras.Model(images, {"embedding": embedding, "attention": attention}, name="tiny")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A Market-layout tree, a model, a train config and a whole extraction of the gallery."""
    base = tmp_path_factory.mktemp("messages")
    root = base / "market"
    for folder, names in TREE.items():
        for name in names:
            write_image(str(root / folder / name), 32, 16)
    model = base / "tiny.keras"
    tiny_model().save(model)
    config = base / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"train": [f"market1501:{root}"]},
                "model": {
                    "backbone": "small_convnet",
                    "input_shape": [64, 32, 3],
                    "embedding_dim": 8,
                },
                "batches": {"p": 2, "k": 2},
                "schedule": {"base_lr": 1e-3, "decay_start_epoch": 1, "decay_end_epoch": 2},
                "train": {"epochs": 1, "verbose": 0},
            }
        )
    )
    features = base / "features"
    embed_split(str(model), f"market1501:{root}", "gallery", str(features), batch_size=2)
    return {"root": root, "model": model, "config": config, "features": features, "base": base}


def one_error_line(err, command):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"keras-reid {command}: error: "), err
    assert "Traceback" not in err and "Errno" not in err, err
    return lines[0]


def test_a_config_nobody_may_read_is_named_as_unreadable(setting, tmp_path):
    locked = tmp_path / "locked.yaml"
    shutil.copy(setting["config"], locked)
    locked.chmod(0)
    prefix = unprivileged(locked)
    if prefix is None:
        pytest.skip("ran as root without a way to drop CAP_DAC_OVERRIDE: cannot be denied")
    out = tmp_path / "run"
    code, _, err = run(
        ["train", "embedding", "--config", locked, "--out", out],
        stderr=tmp_path / "err.txt",
        prefix=prefix,
    )
    assert code == 2
    line = one_error_line(err, "train")
    assert f"config: {locked} cannot be read (permission denied)" in line
    assert "make it readable" in line and "choose a folder" not in line
    assert not out.exists()


def test_evaluate_counts_and_names_the_damaged_images_of_query_and_gallery(setting, tmp_path):
    root = tmp_path / "market"
    shutil.copytree(setting["root"], root)
    bad_query = damage(root / "query" / "0003_c1s1_000203_00.jpg", "text")
    bad_gallery = damage(root / "bounding_box_test" / "0003_c3s1_000502_01.jpg", "empty")
    args = ["evaluate", setting["model"], "--data", f"market1501:{root}", "--out", tmp_path / "r"]
    code, _, err = run(args, stderr=tmp_path / "err.txt")
    assert code == 2
    assert one_error_line(err, "evaluate") == (
        "keras-reid evaluate: error: 2 unreadable image(s) in market1501/query, "
        f"market1501/gallery, e.g. {bad_query} ({DAMAGE['text']}), {bad_gallery} "
        f"({DAMAGE['empty']}); delete or re-extract them ({FIX})."
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_an_out_under_a_file_is_named_by_every_command_that_writes(setting, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    model, data = setting["model"], f"market1501:{setting['root']}"
    image = next((setting["root"] / "query").iterdir())
    commands = {
        "train": ["train", "embedding", "--config", setting["config"], "--out", blocker / "run"],
        "synth": ["synth", "--preset", "synth-a", "--ids", 4, "--size", "64x32", "--out"]
        + [blocker / "synth"],
        "demo": ["demo", "--quick", "--out", blocker / "demo"],
        "export": ["export", model, "--out", blocker / "emb" / "1"],
        "export onnx": ["export", model, "--format", "onnx", "--out", blocker / "emb.onnx"],
        "embed": ["embed", model, "--data", data, "--out", blocker / "features"],
        "index build": ["index", "build", setting["features"], "--out", blocker / "index"],
        "evaluate": ["evaluate", model, "--data", data, "--out", blocker / "report"],
        "attention": ["attention", model, image, "--out", blocker / "maps"],
    }
    started = {
        name: start(args, stderr=tmp_path / f"err-{index}.txt" if index % 2 else "pipe")
        for index, (name, args) in enumerate(commands.items())
    }
    wrong = {}
    for name, popen in started.items():
        code, _, err = finish(popen)
        lines = err.strip().splitlines()
        if not (
            code == 2
            and len(lines) == 1
            and lines[0].startswith(f"keras-reid {name.split()[0]}: error: ")
            and f"{blocker} is a file, not a folder; choose another --out" in lines[0]
        ):
            wrong[name] = (code, err)
    assert wrong == {}
    assert [name for name in os.listdir(tmp_path) if not name.startswith("err-")] == ["notes.txt"]


def test_a_full_disk_under_an_export_is_one_line_and_leaves_no_version(setting, tmp_path):
    # The export (about 120 KB) fills a 4 KB disk at its variables (SaveV2), a 64 KB one
    # at saved_model.pb and a 100 KB one at the warm-up requests.
    with contextlib.ExitStack() as stack:
        disks = [
            stack.enter_context(tmpfs(tmp_path / size, f"size={size}", "a small tmpfs"))
            for size in ("4k", "64k", "100k")
        ]
        started = [
            (disk, start(["export", setting["model"], "--out", disk / "emb" / "1"]))
            for disk in disks
        ]
        for disk, popen in started:
            code, _, err = finish(popen)
            assert code == 2, err
            line = one_error_line(err, "export")
            out = disk / "emb" / "1"
            assert line.startswith(f"keras-reid export: error: No space left on device: {out}; ")
            assert "free some space" in line and "ResourceExhaustedError" not in line, line
            assert [p.name for p in disk.rglob("*")] == ["emb"]  # no version, no temporary


def test_versions_tf_serving_would_not_serve_are_refused(setting, tmp_path):
    versions = {"01": "leading zero", "9223372036854775808": "beyond int64"}
    started = {
        version: start(["export", setting["model"], "--out", tmp_path / "emb" / version])
        for version in versions
    }
    for version, popen in started.items():
        code, _, err = finish(popen)
        assert code == 2, (version, err)
        line = one_error_line(err, "export")
        assert f"would not serve version {version!r}" in line, line
        assert "from 0 to 9223372036854775807 without leading zeros" in line, line
    assert not (tmp_path / "emb").exists()


def test_a_missing_shard_names_its_rows_as_embed_does(setting, tmp_path):
    shards = tmp_path / "shards"
    data = f"market1501:{setting['root']}"
    code, out, err = run(
        ["embed", setting["model"], "--data", data, "--out", shards]
        + ["--shard", 0, "--num-shards", 2, "--batch-size", 2]
    )
    assert code == 0, err
    assert f"rows 0..1 of the {len(GALLERY)}" in out  # batch 0 of 3: rows 0 and 1
    code, _, err = run(["index", "build", shards, "--out", tmp_path / "index"])
    assert code == 2
    line = one_error_line(err, "index")
    assert "shard(s) 1 of 2 are missing (rows 2..4)" in line, line
    assert not (tmp_path / "index").exists()
