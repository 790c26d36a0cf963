"""ONNX export: onnxruntime against the SavedModel and Keras, metadata, groups, the CLI.

The parity model is the ImageNet MobileNet-0.25 trunk at 128x64 (real
BatchNorm statistics, so different people's embeddings differ), run on every
real crop of ../shared/data/mini_market1501; the expectation is the
SavedModel's ``serving_default`` loaded with ``tf.saved_model.load``.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_reid.cli import main
from keras_reid.errors import ReIDError
from keras_reid.models.embedding import build_embedding_model
from keras_reid.serving.onnx import export_onnx, read_metadata
from keras_reid.serving.savedmodel import export_saved_model
from tests.console import finish, start
from tests.helpers import grouped_model

ort = pytest.importorskip("onnxruntime")

README = Path(__file__).resolve().parents[1] / "README.md"
SIZE = (128, 64)
DIM = 32


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(path, **feed):
    onnx = session(path)
    names = [output.name for output in onnx.get_outputs()]
    return dict(zip(names, onnx.run(None, feed), strict=True))


def l2(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def crops(mini_market_root):
    """Every real crop (train, query, gallery) as uint8 RGB at 128x64."""
    paths = sorted(mini_market_root.glob("*/*.jpg"))
    assert len(paths) == 96
    images = [cv2.imread(str(path))[:, :, ::-1] for path in paths]
    resized = [
        x if x.shape[:2] == SIZE else cv2.resize(x, SIZE[::-1], interpolation=cv2.INTER_AREA)
        for x in images
    ]
    return np.ascontiguousarray(np.stack(resized))


@pytest.fixture(scope="module")
def mobilenet(mobilenet_025_weights):
    return build_embedding_model(
        "mobilenet",
        alpha=0.25,
        input_shape=(*SIZE, 3),
        weights=str(mobilenet_025_weights),
        embedding_dim=DIM,
    )


def test_onnxruntime_equals_the_saved_model_on_the_real_crops(mobilenet, crops, tmp_path):
    folder = export_saved_model(mobilenet, tmp_path / "emb" / "1", warmup=False)
    path = export_onnx(mobilenet, tmp_path / "emb.onnx")
    assert path == str(tmp_path / "emb.onnx")
    want = tf.saved_model.load(folder).signatures["serving_default"](images=tf.constant(crops))
    want = want["embedding"].numpy()
    got = run(path, images=crops)
    assert sorted(got) == ["embedding"]
    np.testing.assert_allclose(got["embedding"], want, atol=1e-4)
    # Not trivially equal: real crops of different people are far apart.
    distances = np.linalg.norm(want[:, None] - want[None], axis=-1)[np.triu_indices(len(want), 1)]
    assert distances.max() > 0.5
    np.testing.assert_allclose(np.linalg.norm(got["embedding"], axis=1), 1.0, atol=1e-5)

    onnx = session(path)
    inputs, outputs = onnx.get_inputs(), onnx.get_outputs()
    assert [(x.name, x.type, x.shape) for x in inputs] == [
        ("images", "tensor(uint8)", ["batch", 128, 64, 3])
    ]
    assert [(x.name, x.type, x.shape) for x in outputs] == [
        ("embedding", "tensor(float)", ["batch", DIM])
    ]
    meta = read_metadata(path)
    assert meta["image_size"] == [128, 64] and meta["tta"] is None
    assert meta["embedding_dim"] == DIM and meta["embedding_l2_normalized"] is True
    from keras_reid import __version__

    assert meta["keras_reid"] == __version__
    assert meta["graph"] == f"images uint8 [batch, 128, 64, 3] -> embedding float32 [batch, {DIM}]"


def tiny_model():
    images = keras.Input((32, 16, 3), name="images")
    features = keras.layers.Conv2D(6, 3, strides=2, activation="relu")(images)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(
        images, {"embedding": keras.layers.Dense(4, name="embedding")(pooled)}, name="tiny"
    )


def test_a_tiny_model_with_flip_tta_and_shapes_onnxruntime_refuses(tmp_path):
    model = tiny_model()
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 16, 3), dtype=np.uint8)
    folder = export_saved_model(model, tmp_path / "tiny" / "1", tta="flip", warmup=False)
    path = export_onnx(model, tmp_path / "tiny.onnx", tta="flip")
    got = run(path, images=images)["embedding"]
    served = tf.saved_model.load(folder).signatures["serving_default"]
    np.testing.assert_allclose(got, served(images=tf.constant(images))["embedding"], atol=1e-5)
    x = images.astype("float32")
    views = [model(v, training=False)["embedding"].numpy() for v in (x, x[:, :, ::-1])]
    np.testing.assert_allclose(got, l2((views[0] + views[1]) / 2), atol=1e-5)
    # The mirror matters for this model: without TTA the embedding differs.
    assert np.abs(l2(views[0]) - got).max() > 1e-3
    assert read_metadata(path)["tta"] == "flip"
    assert run(path, images=images[:1])["embedding"].shape == (1, 4)
    assert run(path, images=images[:0])["embedding"].shape == (0, 4)

    onnx = session(path)
    for shape in ((1, 64, 32, 3), (2, 32, 16, 1), (32, 16, 3), (2, 32, 16, 3, 1)):
        with pytest.raises(Exception, match="Invalid rank|invalid dimensions") as error:
            onnx.run(None, {"images": np.zeros(shape, np.uint8)})
        assert type(error.value).__name__ == "InvalidArgument", shape


def test_a_multi_group_model_takes_group_and_refuses_bad_groups(tmp_path):
    model = grouped_model(groups=3)
    groups = {"nui": "dataset", "groups": ["a", "b", "c"]}
    (tmp_path / "groups.json").write_text(json.dumps(groups))
    with pytest.raises(ReIDError, match="has 3 θ_nui groups but no groups.json"):
        export_onnx(model, tmp_path / "m.onnx")
    path = export_onnx(model, tmp_path / "m.onnx", tta="flip", groups_file=tmp_path / "groups.json")
    images = np.random.default_rng(2).integers(0, 256, (4, 32, 16, 3), dtype=np.uint8)
    group = np.array([2, 0, 1, 2], np.int32)
    got = run(path, images=images, group=group)
    kernel, bias = model.get_layer("nuisance").get_weights()
    mean = images.astype("float32").mean(axis=(1, 2))  # a mirror has the same mean colour
    nuisance = np.stack([mean[i] @ kernel[g] + bias[g] for i, g in enumerate(group)])
    np.testing.assert_allclose(got["nuisance"], nuisance, rtol=1e-5, atol=1e-3)
    embedding = model({"images": images, "group": group}, training=False)["embedding"]
    np.testing.assert_allclose(got["embedding"], l2(embedding.numpy()), atol=1e-5)
    assert [x.name for x in session(path).get_inputs()] == ["images", "group"]
    empty = run(path, images=images[:0], group=group[:0])
    assert (empty["embedding"].shape, empty["nuisance"].shape) == ((0, 4), (0, 2))
    meta = read_metadata(path)
    assert (meta["groups"], meta["groups_json"]) == (3, groups)

    onnx = session(path)
    for bad in ([0, 1, 2], [0, 1, 2, 0, 1], [0], [0, 3, 1, 2], [0, -1, 1, 2]):
        with pytest.raises(Exception, match="group_must_be_one_int_in_0_to_2_per_image"):
            onnx.run(None, {"images": images, "group": np.array(bad, np.int32)})


def test_bad_destinations_are_one_line_errors_and_nothing_is_half_written(
    tmp_path, capsys, monkeypatch
):
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    existing = tmp_path / "old.onnx"
    existing.write_bytes(b"old")
    cases = [
        (["--out", str(tmp_path / "tiny.pb")], "does not end with .onnx"),
        (["--out", str(tmp_path)], "is a folder"),
        (["--out", str(existing)], "exists; pass --overwrite"),
        (["--out", str(tmp_path / "a.onnx"), "--opset", "9"], "opset must be an int from 13"),
        (
            ["--out", str(tmp_path / "a.onnx"), "--no-warmup"],
            "--warmup/--no-warmup are for --format",
        ),
    ]
    for args, message in cases:
        assert main(["export", str(path), "--format", "onnx", *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("keras-reid export: error:"), err
        assert message in err[0], err
    assert main(["export", str(path), "--out", str(tmp_path / "m" / "1"), "--opset", "15"]) == 2
    assert "--opset is for --format onnx" in capsys.readouterr().err
    assert main(["export", str(path), "--out", str(tmp_path / "a.onnx")]) == 2
    assert "or pass --format onnx for an ONNX file" in capsys.readouterr().err

    # A conversion that fails is one line, and leaves the old file and no temporary.
    import tf2onnx

    def fail(*args, **kwargs):
        raise ValueError("Unsupported ops: Counter({'Mystery': 1})\nmore detail")

    monkeypatch.setattr(tf2onnx.convert, "from_function", fail)
    with pytest.raises(ReIDError, match=r"tf2onnx cannot convert .*\(Unsupported ops: Counter"):
        export_onnx(path, existing, overwrite=True)
    assert existing.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["old.onnx", "tiny.keras"]


def test_the_console_script_exports_onnx_and_refuses_bad_destinations(tmp_path):
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    existing = tmp_path / "old.onnx"
    existing.write_bytes(b"old")
    export = ["export", path, "--format", "onnx", "--tta", "flip", "--out"]
    started = [
        start([*export, tmp_path / "out" / "tiny.onnx"]),
        start([*export, existing]),
        start([*export, tmp_path]),
    ]
    (status, out, err), *refused = [finish(popen) for popen in started]
    assert status == 0, err
    assert out.splitlines() == [
        f"wrote {tmp_path / 'out' / 'tiny.onnx'}",
        "  images uint8 [batch, 32, 16, 3] -> embedding float32 [batch, 4]",
    ]
    assert read_metadata(tmp_path / "out" / "tiny.onnx")["tta"] == "flip"
    assert os.listdir(tmp_path / "out") == ["tiny.onnx"]
    for (status, out, err), message in zip(refused, ("exists; pass", "is a folder"), strict=True):
        assert status == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("keras-reid export: error:"), err
        assert message in lines[0]
    assert existing.read_bytes() == b"old"


def test_a_killed_exports_temporary_is_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".tiny.onnx.tmp-{dead.pid}-killed.onnx"
    stale.write_bytes(b"half")
    export_onnx(tiny_model(), tmp_path / "tiny.onnx")
    assert os.listdir(tmp_path) == ["tiny.onnx"]


def test_the_readme_onnx_snippet(tmp_path, monkeypatch):
    text = README.read_text(encoding="utf-8").split("## Export and serve", 1)[1]
    section = text.split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (snippet,) = [block for block in blocks if "onnxruntime" in block]
    model = tiny_model()
    export_onnx(model, tmp_path / "saved_models" / "emb.onnx")
    monkeypatch.chdir(tmp_path)
    client = {}
    exec(snippet, client)
    assert (client["height"], client["width"]) == (32, 16)
    images = np.random.default_rng(3).integers(0, 256, (3, 32, 16, 3), dtype=np.uint8)
    want = l2(model(images.astype("float32"), training=False)["embedding"].numpy())
    np.testing.assert_allclose(client["embed_onnx"](images), want, atol=1e-5)
