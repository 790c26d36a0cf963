"""SavedModel export: signatures, parity in a TensorFlow-only process, versions, requests.

The parity models use the ImageNet MobileNet-0.25 trunk at 128x64, so their
BatchNorm statistics are real and the embeddings of different people differ
(an untrained trunk's inference-mode features collapse, and parity would hold
trivially). Expectations are the Keras models' own outputs, normalised here
with numpy; the SavedModels are run in one fresh process that can import
TensorFlow but not Keras or keras_reid, beside ``saved_model_cli show --all``.
"""

import base64
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import types
import urllib.request
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_reid.cli import main
from keras_reid.data.images import load_image
from keras_reid.errors import ReIDError
from keras_reid.models.embae import (
    build_embae_inference_model,
    build_embae_model,
    copy_stage1_head,
)
from keras_reid.models.embedding import build_embedding_model
from keras_reid.serving.savedmodel import export_saved_model, version_folder
from tests.helpers import grouped_model

README = Path(__file__).resolve().parents[1] / "README.md"
SIZE = (128, 64)
DIM, NUI_DIM = 32, 16
GROUPS = {"nui": "camera", "groups": [["market1501", 1], ["market1501", 2], ["market1501", 6]]}
SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"

# Runs in a fresh interpreter where importing keras or keras_reid fails: the
# exported graphs must load and run with TensorFlow alone.
FRESH_PROCESS = r"""
import json, sys
sys.modules["keras"] = sys.modules["keras_reid"] = None
import numpy as np
import tensorflow as tf

job = json.load(open(sys.argv[1]))
pixels = np.load(job["pixels"])
encoded = tf.constant([open(path, "rb").read() for path in job["files"]])
outputs, signatures, refused = {}, {}, {}
for name, folder in job["exports"].items():
    loaded = tf.saved_model.load(folder)
    for signature in ("serving_default", "embed_encoded"):
        function = loaded.signatures[signature]
        inputs = function.structured_input_signature[1]
        described = {}
        for kind, specs in (("inputs", inputs), ("outputs", function.structured_outputs)):
            described[kind] = {k: [v.dtype.name, list(v.shape)] for k, v in specs.items()}
        signatures[f"{name}/{signature}"] = described
        if signature == "serving_default":
            feed = {"images": tf.constant(pixels)}
        else:
            feed = {"encoded": encoded}
        if "group" in inputs:
            count = len(pixels) if signature == "serving_default" else len(job["files"])
            feed["group"] = tf.constant(np.arange(count) % 3, tf.int32)
        for key, value in function(**feed).items():
            outputs[f"{name}/{signature}/{key}"] = value.numpy()
        # Images twice the model's size (which an unchecked reshape turned into four rows
        # each), and a string batch of rank 2.
        if signature == "serving_default":
            bad = {"images": tf.zeros([1, 256, 128, 3], tf.uint8)}
        else:
            bad = {"encoded": tf.reshape(encoded[:2], [2, 1])}
        if "group" in inputs:
            bad["group"] = tf.zeros([len(next(iter(bad.values())))], tf.int32)
        try:
            rows = len(next(iter(function(**bad).values())))
            refused[f"{name}/{signature}"] = f"returned {rows} rows"
        except tf.errors.InvalidArgumentError as error:
            lines = str(error).splitlines()
            refused[f"{name}/{signature}"] = next((x for x in lines if "assertion" in x), lines[0])
np.savez(job["outputs"], **outputs)
print(json.dumps({"signatures": signatures, "refused": refused}))
"""


@pytest.fixture(scope="module")
def real_images(mini_market_root, tmp_path_factory):
    """Eight real crops (JPEG, 128x64), their pixels, and one PNG of another size."""
    paths = sorted(str(p) for p in (mini_market_root / "query").glob("*.jpg"))[::4][:8]
    pixels = np.stack([cv2.imread(path)[:, :, ::-1] for path in paths])
    assert pixels.shape == (8, *SIZE, 3)
    png = str(tmp_path_factory.mktemp("png") / "large.png")
    cv2.imwrite(png, cv2.resize(cv2.imread(paths[0]), (90, 200), interpolation=cv2.INTER_CUBIC))
    return {"files": [*paths, png], "pixels": np.ascontiguousarray(pixels)}


@pytest.fixture(scope="module")
def models(mobilenet_025_weights):
    stage1 = build_embedding_model(
        "mobilenet",
        alpha=0.25,
        input_shape=(*SIZE, 3),
        weights=str(mobilenet_025_weights),
        embedding_dim=DIM,
    )
    feature_dim = int(stage1.get_layer("trunk_features").output.shape[-1])
    autoencoder = build_embae_model(feature_dim, embedding_dim=DIM, nui_dim=NUI_DIM, groups=3)
    copy_stage1_head(stage1, autoencoder)
    return {"emb": stage1, "embae_cam": build_embae_inference_model(stage1, autoencoder)}


@pytest.fixture(scope="module")
def exports(models, tmp_path_factory):
    """emb/1 (flip TTA) and embae_cam/1 (three θ_nui groups, through the CLI)."""
    base = tmp_path_factory.mktemp("exports")
    root = base / "saved_models"
    folders = {"emb": export_saved_model(models["emb"], root / "emb" / "1", tta="flip")}
    run = base / "run" / "cam_nui"
    run.mkdir(parents=True)
    models["embae_cam"].save(run / "inference.keras")
    (run / "groups.json").write_text(json.dumps(GROUPS))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(["export", str(run / "inference.keras"), "--out", str(root / "embae_cam/1")])
    assert status == 0
    folders["embae_cam"] = str(root / "embae_cam" / "1")
    return {"folders": folders, "cli_output": stdout.getvalue(), "root": root}


def l2(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def expected(models, real_images):
    """What each signature should return, from the Keras models and numpy."""
    pixels = real_images["pixels"].astype("float32")
    # embed_encoded decodes and resizes as the evaluation pipeline reads a file.
    decoded = np.stack([load_image(p, SIZE).numpy() for p in real_images["files"]]).astype(
        "float32"
    )
    result = {}
    for signature, images in (("serving_default", pixels), ("embed_encoded", decoded)):
        emb = models["emb"]
        views = [emb(x, training=False)["embedding"].numpy() for x in (images, images[:, :, ::-1])]
        result[f"emb/{signature}/embedding"] = l2((views[0] + views[1]) / 2)
        group = (np.arange(len(images)) % 3).astype("int32")
        out = models["embae_cam"]({"images": images, "group": group}, training=False)
        result[f"embae_cam/{signature}/embedding"] = l2(out["embedding"].numpy())
        result[f"embae_cam/{signature}/nuisance"] = out["nuisance"].numpy()
    return result


@pytest.fixture(scope="module")
def fresh_process(exports, real_images, tmp_path_factory):
    """The parity script and saved_model_cli, run concurrently in fresh processes."""
    work = tmp_path_factory.mktemp("fresh")
    np.save(work / "pixels.npy", real_images["pixels"])
    job = {
        "pixels": str(work / "pixels.npy"),
        "files": real_images["files"],
        "exports": exports["folders"],
        "outputs": str(work / "outputs.npz"),
    }
    (work / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    run = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": env}
    parity = subprocess.Popen(
        [sys.executable, "-c", FRESH_PROCESS, str(work / "job.json")], cwd=work, **run
    )
    shows = {}
    if SAVED_MODEL_CLI.is_file():
        for name in ("emb", "embae_cam"):
            command = [str(SAVED_MODEL_CLI), "show", "--all", "--dir", exports["folders"][name]]
            shows[name] = subprocess.Popen(command, **run)
    out, err = parity.communicate(timeout=300)
    assert parity.returncode == 0, err[-3000:]
    cli = {}
    for name, process in shows.items():
        show_out, show_err = process.communicate(timeout=300)
        assert process.returncode == 0, show_err[-3000:]
        cli[name] = show_out
    with np.load(job["outputs"]) as data:
        outputs = dict(data)
    result = json.loads(out.strip().splitlines()[-1])
    return {"outputs": outputs, "cli": cli, **result}


def parse_show(text):
    """{signature: {"inputs"/"outputs": {name: (dtype, shape)}, "method": ...}} from show --all."""
    parsed = {}
    blocks = re.split(r"\nsignature_def\['", "\n" + text.split("Concrete Functions")[0])
    for block in blocks[1:]:
        name = block.split("'", 1)[0]
        entry = {"inputs": {}, "outputs": {}, "method": None}
        for kind, key, dtype, shape in re.findall(
            r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (.+)", block
        ):
            entry[kind][key] = (dtype, shape)
        method = re.search(r"Method name is: (\S*)", block)
        entry["method"] = method.group(1) if method else None
        parsed[name] = entry
    return parsed


def test_saved_model_cli_shows_both_signatures_with_dynamic_batch(fresh_process):
    if not fresh_process["cli"]:
        pytest.skip(f"saved_model_cli not found at {SAVED_MODEL_CLI}")
    predict = "tensorflow/serving/predict"
    emb = parse_show(fresh_process["cli"]["emb"])
    embedding = {"embedding": ("DT_FLOAT", f"(-1, {DIM})")}
    assert emb["serving_default"] == {
        "inputs": {"images": ("DT_UINT8", "(-1, 128, 64, 3)")},
        "outputs": embedding,
        "method": predict,
    }
    assert emb["embed_encoded"] == {
        "inputs": {"encoded": ("DT_STRING", "(-1)")},
        "outputs": embedding,
        "method": predict,
    }
    cam = parse_show(fresh_process["cli"]["embae_cam"])
    both = {**embedding, "nuisance": ("DT_FLOAT", f"(-1, {NUI_DIM})")}
    group = {"group": ("DT_INT32", "(-1)")}
    assert cam["serving_default"] == {
        "inputs": {"images": ("DT_UINT8", "(-1, 128, 64, 3)"), **group},
        "outputs": both,
        "method": predict,
    }
    assert cam["embed_encoded"] == {
        "inputs": {"encoded": ("DT_STRING", "(-1)"), **group},
        "outputs": both,
        "method": predict,
    }


def test_tensorflow_alone_reproduces_the_keras_outputs(
    fresh_process, expected, models, real_images
):
    outputs = fresh_process["outputs"]
    assert sorted(outputs) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(outputs[key], value, atol=1e-5, err_msg=key)
    # Not trivially equal: real crops of different people are far apart ...
    emb = expected["emb/serving_default/embedding"]
    distances = np.linalg.norm(emb[:, None] - emb[None], axis=-1)[np.triu_indices(len(emb), 1)]
    assert distances.min() > 0.05
    # ... and each group has its own nuisance weights.
    image = real_images["pixels"][:1].repeat(3, axis=0).astype("float32")
    by_group = models["embae_cam"]({"images": image, "group": np.arange(3)}, training=False)
    assert np.abs(np.diff(by_group["nuisance"].numpy(), axis=0)).max() > 1e-2
    assert fresh_process["signatures"]["embae_cam/serving_default"] == {
        "inputs": {"images": ["uint8", [None, 128, 64, 3]], "group": ["int32", [None]]},
        "outputs": {
            "embedding": ["float32", [None, DIM]],
            "nuisance": ["float32", [None, NUI_DIM]],
        },
    }


def test_tensorflow_alone_refuses_inputs_of_another_shape(fresh_process):
    """A client that sends the wrong shape gets an error naming both shapes, not wrong rows."""
    images = (
        "assertion failed: [images must be RGB [batch, 128, 64, 3] (the size the model takes; "
        "send images of other sizes as JPEG/PNG bytes to embed_encoded); received shape] "
        "[1 256 128 3]"
    )
    encoded = (
        "assertion failed: [encoded must be a vector [batch] of string (one per image); "
        "received shape] [2 1]"
    )
    assert fresh_process["refused"] == {
        "emb/serving_default": images,
        "emb/embed_encoded": encoded,
        "embae_cam/serving_default": images,
        "embae_cam/embed_encoded": encoded,
    }


def test_cli_export_lists_signatures_and_ships_groups_json(exports):
    lines = exports["cli_output"].splitlines()
    assert lines[0] == f"wrote {exports['folders']['embae_cam']}"
    assert lines[1:] == [
        "  serving_default: images uint8 [batch, 128, 64, 3], group int32 [batch] -> "
        f"embedding float32 [batch, {DIM}], nuisance float32 [batch, {NUI_DIM}]",
        "  embed_encoded: encoded string [batch] (JPEG/PNG bytes), group int32 [batch] -> "
        f"embedding float32 [batch, {DIM}], nuisance float32 [batch, {NUI_DIM}]",
        "  4 warm-up requests in assets.extra/tf_serving_warmup_requests",
    ]
    extra = Path(exports["folders"]["embae_cam"]) / "assets.extra"
    assert json.loads((extra / "groups.json").read_text()) == GROUPS
    record = json.loads((extra / "export.json").read_text())
    assert record["source"].endswith("cam_nui/inference.keras")
    assert (record["image_size"], record["groups"], record["tta"]) == ([128, 64], 3, None)
    assert (record["embedding_dim"], record["warmup_requests"]) == (DIM, 4)
    emb_extra = Path(exports["folders"]["emb"]) / "assets.extra"
    assert sorted(os.listdir(emb_extra)) == ["export.json", "tf_serving_warmup_requests"]
    assert json.loads((emb_extra / "export.json").read_text())["tta"] == "flip"
    # Only the numbered folders: no temporary folder left beside them.
    assert sorted(os.listdir(exports["root"])) == ["emb", "embae_cam"]
    for name in ("emb", "embae_cam"):
        assert os.listdir(exports["root"] / name) == ["1"]


# ---------------------------------------------------------------- TF Serving warm-up


def read_warmup(folder):
    """The PredictRequests of an export's warm-up file, as TF Serving reads them."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(folder) / "assets.extra" / "tf_serving_warmup_requests"
    logs = [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(str(path))
    ]
    assert all(log.WhichOneof("log_type") == "predict_log" for log in logs)
    return [log.predict_log.request for log in logs]


def test_warmup_requests_match_the_signatures_and_the_keras_outputs(exports, models, served):
    """Each warm-up record names a signature with exactly its inputs, and runs to Keras' outputs.

    The requests hold mid-grey images (a flat grey JPEG decodes to exactly
    grey), so the expectation is the Keras model on a uniform 128 batch.
    """
    grey = np.full((1, *SIZE, 3), 128, "float32")
    emb = models["emb"]
    flipped = [emb(x, training=False)["embedding"].numpy() for x in (grey, grey[:, :, ::-1])]
    cam = {
        g: models["embae_cam"]({"images": grey, "group": np.array([g])}, training=False)
        for g in range(3)
    }
    for name, folder in exports["folders"].items():
        requests = read_warmup(folder)
        assert [(r.model_spec.name, r.model_spec.signature_name) for r in requests] == [
            (name, "serving_default"),
            (name, "serving_default"),
            (name, "embed_encoded"),
            (name, "embed_encoded"),
        ]
        loaded = tf.saved_model.load(folder)
        batches = []
        for request in requests:
            function = loaded.signatures[request.model_spec.signature_name]
            specs = function.structured_input_signature[1]
            feed = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            assert sorted(feed) == sorted(specs)
            batch = len(next(iter(feed.values())))
            batches.append(batch)
            for key, value in feed.items():
                assert tf.as_dtype(value.dtype) == specs[key].dtype, key
                assert specs[key].shape.is_compatible_with(value.shape), key
                assert len(value) == batch, key
            if "images" in feed:
                assert (feed["images"] == 128).all()
            else:
                decoded = [cv2.imdecode(np.frombuffer(x, np.uint8), 1) for x in feed["encoded"]]
                assert all(image.shape == (*SIZE, 3) for image in decoded)
                assert all((np.abs(image.astype(int) - 128) <= 1).all() for image in decoded)
            outputs = {key: value.numpy() for key, value in function(**feed).items()}
            assert all(np.isfinite(value).all() for value in outputs.values())
            if name == "emb":
                want = {"embedding": l2((flipped[0] + flipped[1]) / 2).repeat(batch, axis=0)}
            else:
                groups = feed["group"]
                assert groups.tolist() == [i % 3 for i in range(batch)]
                want = {
                    key: np.concatenate([cam[g][key].numpy() for g in groups])
                    for key in ("embedding", "nuisance")
                }
                want["embedding"] = l2(want["embedding"])
            assert sorted(outputs) == sorted(want)
            for key, value in want.items():
                np.testing.assert_allclose(outputs[key], value, atol=1e-4, err_msg=f"{name} {key}")
        assert batches == [1, 8, 1, 8]


def test_warmup_can_be_skipped_and_needs_tensorflow_serving_api(tmp_path, monkeypatch, capsys):
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    assert main(["export", str(path), "--out", str(tmp_path / "a" / "1"), "--no-warmup"]) == 0
    assert "warm-up" not in capsys.readouterr().out
    extra = tmp_path / "a" / "1" / "assets.extra"
    assert os.listdir(extra) == ["export.json"]
    assert json.loads((extra / "export.json").read_text())["warmup_requests"] == 0
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    # Without the package, an export by default still serves, without warm-up, and says so.
    assert main(["export", str(path), "--out", str(tmp_path / "c" / "1")]) == 0
    out = capsys.readouterr().out
    assert "no warm-up requests: tensorflow-serving-api is not installed" in out
    extra = tmp_path / "c" / "1" / "assets.extra"
    assert os.listdir(extra) == ["export.json"]
    record = json.loads((extra / "export.json").read_text())
    assert record["warmup_skipped"] == "tensorflow-serving-api is not installed"
    # Asked for, the warm-up is required.
    assert main(["export", str(path), "--out", str(tmp_path / "b" / "1"), "--warmup"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "pip install --no-deps tensorflow-serving-api" in line and "--no-warmup" in line
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------- documented requests


def readme_blocks(language):
    """The fenced ``language`` blocks of the README's "Export and serve" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Export and serve", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def tf_serving_predict(signatures, body):
    """A REST :predict body decoded as TF Serving does, run on the signature, as its JSON reply.

    Row format: each instance is an object of named inputs, or the bare value
    when the signature has one input; ``{"b64": ...}`` is base64 bytes. The
    reply lists one value per instance, or one object per instance when the
    signature has several outputs.
    """
    request = json.loads(body)
    function = signatures[request.get("signature_name", "serving_default")]
    specs = function.structured_input_signature[1]
    instances = request["instances"]

    def named(instance):
        if isinstance(instance, dict) and set(instance) != {"b64"}:
            return instance
        assert len(specs) == 1, "a bare instance needs a one-input signature"
        return {next(iter(specs)): instance}

    def value(item):
        return base64.b64decode(item["b64"]) if isinstance(item, dict) else item

    rows = [named(instance) for instance in instances]
    feed = {
        name: tf.constant([value(row[name]) for row in rows], dtype=spec.dtype)
        for name, spec in specs.items()
    }
    outputs = {name: tensor.numpy().tolist() for name, tensor in function(**feed).items()}
    if len(outputs) == 1:
        predictions = next(iter(outputs.values()))
    else:
        predictions = [{name: outputs[name][i] for name in outputs} for i in range(len(rows))]
    return json.dumps({"predictions": predictions}).encode()


@pytest.fixture(scope="module")
def served(exports):
    """model name -> the signatures of its export, loaded as TF Serving would."""
    return {
        name: tf.saved_model.load(folder).signatures for name, folder in exports["folders"].items()
    }


def test_readme_rest_snippets_against_the_saved_model(served, real_images, expected, monkeypatch):
    def urlopen(request):
        match = re.fullmatch(r"http://localhost:8501/v1/models/(\w+):predict", request.full_url)
        assert match and request.get_method() == "POST", request.full_url
        return io.BytesIO(tf_serving_predict(served[match.group(1)], request.data))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    (snippet,) = [block for block in readme_blocks("python") if "urllib" in block]
    client = {}
    exec(snippet, client)
    files, pixels = real_images["files"], real_images["pixels"]
    np.testing.assert_allclose(
        client["embed_files"](files), expected["emb/embed_encoded/embedding"], atol=1e-5
    )
    np.testing.assert_allclose(
        client["embed_pixels"](pixels), expected["emb/serving_default/embedding"], atol=1e-5
    )
    # The per-camera request forms the README gives.
    client["URL"] = "http://localhost:8501/v1/models/embae_cam:predict"
    rows = client["predict"](
        {
            "instances": [
                {"images": image.tolist(), "group": i % 3} for i, image in enumerate(pixels)
            ]
        }
    )
    np.testing.assert_allclose(
        [row["nuisance"] for row in rows], expected["embae_cam/serving_default/nuisance"], atol=1e-5
    )
    b64 = [base64.b64encode(Path(path).read_bytes()).decode() for path in files]
    rows = client["predict"](
        {
            "signature_name": "embed_encoded",
            "instances": [{"encoded": {"b64": b}, "group": i % 3} for i, b in enumerate(b64)],
        }
    )
    np.testing.assert_allclose(
        [row["embedding"] for row in rows], expected["embae_cam/embed_encoded/embedding"], atol=1e-5
    )


def test_readme_curl_payload_against_the_saved_model(served, real_images, expected, tmp_path):
    (command,) = [line for line in "\n".join(readme_blocks("bash")).splitlines() if "curl" in line]
    query = tmp_path / "query.jpg"
    query.write_bytes(Path(real_images["files"][0]).read_bytes())
    # A curl stand-in that prints the URL and the body it was given.
    fake_curl = (
        'curl() { while [ $# -gt 0 ]; do case "$1" in '
        '-d) printf "%s" "$2" > body.json; shift 2;; '
        'http*) echo "$1"; shift;; '
        "*) shift;; esac; done; }"
    )
    result = subprocess.run(
        ["bash", "-c", f"{fake_curl}\n{command}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://localhost:8501/v1/models/emb:predict"
    reply = json.loads(tf_serving_predict(served["emb"], (tmp_path / "body.json").read_bytes()))
    np.testing.assert_allclose(
        reply["predictions"], expected["emb/embed_encoded/embedding"][:1], atol=1e-5
    )


def test_readme_grpc_snippet_against_the_saved_model(served, real_images, expected, monkeypatch):
    """The gRPC client with the tensorflow-serving-api modules stood in for.

    The stand-in server does what TF Serving does with a PredictRequest: it
    turns each TensorProto into a tensor, runs the named signature and
    returns TensorProtos.
    """
    calls = []

    class Request:
        def __init__(self):
            self.model_spec = types.SimpleNamespace(name=None, signature_name=None)
            self.inputs = {}

    class Proto:
        def CopyFrom(self, proto):  # noqa: N802 - the protobuf method's name
            self.proto = proto

    class Inputs(dict):
        def __missing__(self, key):
            self[key] = Proto()
            return self[key]

    class Stub:
        def __init__(self, channel):
            self.channel = channel

        def Predict(self, request, timeout):  # noqa: N802 - the gRPC method's name
            calls.append((self.channel, request.model_spec.name, timeout))
            function = served[request.model_spec.name][request.model_spec.signature_name]
            feed = {k: tf.constant(tf.make_ndarray(v.proto)) for k, v in request.inputs.items()}
            outputs = function(**feed)
            protos = {k: tf.make_tensor_proto(v.numpy()) for k, v in outputs.items()}
            return types.SimpleNamespace(outputs=protos)

    def make_request():
        request = Request()
        request.inputs = Inputs()
        return request

    predict_pb2 = types.SimpleNamespace(PredictRequest=make_request)
    service = types.SimpleNamespace(PredictionServiceStub=Stub)
    apis = types.ModuleType("tensorflow_serving.apis")
    apis.predict_pb2, apis.prediction_service_pb2_grpc = predict_pb2, service
    grpc = types.ModuleType("grpc")
    grpc.insecure_channel = lambda target: f"channel to {target}"
    for name, module in (
        ("grpc", grpc),
        ("tensorflow_serving", types.ModuleType("tensorflow_serving")),
        ("tensorflow_serving.apis", apis),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    sys.modules["tensorflow_serving"].apis = apis

    (snippet,) = [block for block in readme_blocks("python") if "grpc" in block]
    client = {}
    exec(snippet, client)
    embedding = client["embed_files_grpc"](real_images["files"])
    np.testing.assert_allclose(embedding, expected["emb/embed_encoded/embedding"], atol=1e-5)
    assert calls == [("channel to localhost:8500", "emb", 30.0)]


# ---------------------------------------------------------------- versions and bad input


def tiny_model(name="tiny"):
    images = keras.Input((32, 16, 3), name="images")
    pooled = keras.layers.GlobalAveragePooling2D()(images)
    return keras.Model(
        images, {"embedding": keras.layers.Dense(4, name="embedding")(pooled)}, name=name
    )


def test_versions_are_refused_replaced_and_never_half_written(tmp_path, monkeypatch):
    out = tmp_path / "tiny" / "1"
    export_saved_model(tiny_model(), out)
    with pytest.raises(ReIDError, match="already holds a version; pass --overwrite"):
        export_saved_model(tiny_model(), out)
    export_saved_model(tiny_model(), out, tta="flip", overwrite=True)
    assert json.loads((out / "assets.extra" / "export.json").read_text())["tta"] == "flip"
    assert os.listdir(tmp_path / "tiny") == ["1"]

    def fail(self, path, **kwargs):
        Path(path, "saved_model.pb").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", fail)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(tiny_model(), tmp_path / "tiny" / "2")
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(tiny_model(), out, overwrite=True)
    # Neither the failed version 2 nor a temporary folder is left; version 1 is intact.
    assert os.listdir(tmp_path / "tiny") == ["1"]
    assert json.loads((out / "assets.extra" / "export.json").read_text())["tta"] == "flip"


def test_a_killed_exports_temporary_is_removed_and_a_concurrent_version_kept(tmp_path, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "tiny" / f".1.tmp-{dead.pid}-killed"
    stale.mkdir(parents=True)
    (stale / "saved_model.pb").write_bytes(b"half")
    out = tmp_path / "tiny" / "1"
    export_saved_model(tiny_model(), out)
    assert os.listdir(tmp_path / "tiny") == ["1"]

    # Another export lands version 2 between this one's check and its rename:
    # it is kept, not replaced.
    from keras_reid.serving import savedmodel as export_module

    def land_first(temporary, target, replace=True, **kwargs):
        if not os.path.exists(target):
            shutil.copytree(out, target)
        return install(temporary, target, replace=replace, **kwargs)

    install = export_module.install_folder
    monkeypatch.setattr(export_module, "install_folder", land_first)
    with pytest.raises(FileExistsError, match="written by another process meanwhile"):
        export_saved_model(tiny_model(), tmp_path / "tiny" / "2", tta="flip")
    record = json.loads((tmp_path / "tiny" / "2" / "assets.extra" / "export.json").read_text())
    assert record["tta"] is None
    assert sorted(os.listdir(tmp_path / "tiny")) == ["1", "2"]


def test_bad_destinations_and_models_are_one_line_errors(tmp_path, capsys):
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("hello")
    features = keras.Input((4,))
    no_embedding = keras.Model(features, {"logits": keras.layers.Dense(2, name="logits")(features)})
    no_embedding.save(tmp_path / "logits.keras")
    other = tmp_path / "other" / "1"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("not an export")
    cases = [
        ([str(path), "--out", str(tmp_path / "tiny")], "is not a NAME/VERSION folder"),
        ([str(path), "--out", str(tmp_path / "tiny" / "v1")], "is not a NAME/VERSION folder"),
        ([str(not_a_model), "--out", str(tmp_path / "m" / "1")], "is not a Keras model file"),
        ([str(tmp_path / "logits.keras"), "--out", str(tmp_path / "m" / "1")], "no 'embedding'"),
        ([str(path), "--out", str(other), "--overwrite"], "holds no saved_model.pb"),
        ([str(path), "--out", str(tmp_path / "m" / "1"), "--groups", str(path)], "single θ_nui"),
    ]
    for args, message in cases:
        assert main(["export", *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("keras-reid export: error:"), err
        assert message in err[0]
    with pytest.raises(SystemExit):
        main(["export", str(path), "--out", str(tmp_path / "m" / "1"), "--tta", "five-crop"])
    assert not (tmp_path / "m").exists()


def test_a_single_group_embae_export_sets_group_zero_inside(tmp_path):
    model = grouped_model(groups=1)
    kernel, bias = (w[0] for w in model.get_layer("nuisance").get_weights())
    function = tf.saved_model.load(export_saved_model(model, tmp_path / "m" / "1")).signatures[
        "serving_default"
    ]
    assert list(function.structured_input_signature[1]) == ["images"]
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 16, 3), dtype=np.uint8)
    nuisance = function(images=tf.constant(images))["nuisance"].numpy()
    expected = images.astype("float32").mean(axis=(1, 2)) @ kernel + bias
    np.testing.assert_allclose(nuisance, expected, rtol=1e-5, atol=1e-4)


def test_multi_group_models_need_their_groups_json(tmp_path):
    model = grouped_model(groups=2)
    with pytest.raises(ReIDError, match="has 2 θ_nui groups but no groups.json"):
        export_saved_model(model, tmp_path / "m" / "1")
    wrong = tmp_path / "groups.json"
    wrong.write_text(json.dumps({"nui": "camera", "groups": [["a", 1]]}))
    with pytest.raises(ReIDError, match="lists 1 groups but the model has 2"):
        export_saved_model(model, tmp_path / "m" / "1", groups_file=wrong)
    right = tmp_path / "right.json"
    right.write_text(json.dumps({"nui": "dataset", "groups": ["a", "b"]}))
    out = export_saved_model(model, tmp_path / "m" / "1", groups_file=right)
    function = tf.saved_model.load(out).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="one int32 entry per image"):
        function(images=tf.zeros([2, 32, 16, 3], tf.uint8), group=tf.constant([0]))


def test_every_signature_refuses_inputs_of_another_shape(tmp_path):
    """Wrong height, width, channels or rank: an error naming both shapes, in every signature.

    The model takes 32x16; one 64x32 image holds the pixels of four, which an
    unchecked reshape served as four embeddings.
    """
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"nui": "dataset", "groups": ["a", "b"]}))
    folders = {
        "one group": export_saved_model(tiny_model(), tmp_path / "one" / "1"),
        "two groups": export_saved_model(
            grouped_model(groups=2), tmp_path / "two" / "1", tta="flip", groups_file=groups
        ),
    }
    png = tf.io.encode_png(tf.zeros([50, 20, 3], tf.uint8))
    wrong_images = [(1, 64, 32, 3), (1, 16, 16, 3), (2, 32, 16, 1), (32, 16, 3), (2, 32, 16, 3, 1)]
    for name, folder in folders.items():
        signatures = tf.saved_model.load(folder).signatures
        serve, encoded = signatures["serving_default"], signatures["embed_encoded"]

        def group(count, name=name):
            return {"group": tf.zeros([count], tf.int32)} if name == "two groups" else {}

        rows = serve(images=tf.zeros([2, 32, 16, 3], tf.uint8), **group(2))["embedding"]
        assert rows.shape == (2, 4), name
        assert encoded(encoded=tf.stack([png] * 3), **group(3))["embedding"].shape == (3, 4)
        for shape in wrong_images:
            received = " ".join(map(str, shape))
            expected = (
                r"images must be RGB \[batch, 32, 16, 3\].*received shape\] \[" + received + r"\]"
            )
            with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
                serve(images=tf.zeros(shape, tf.uint8), **group(shape[0]))
        for strings, received in ((tf.stack([[png], [png]]), "2 1"), (png, "")):
            expected = (
                r"encoded must be a vector \[batch\] of string.*shape\] \[" + received + r"\]"
            )
            with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
                encoded(encoded=strings, **group(2))
    signatures = tf.saved_model.load(folders["two groups"]).signatures
    images, strings = tf.zeros([2, 32, 16, 3], tf.uint8), tf.stack([png, png])
    for signature, feed in (
        ("serving_default", {"images": images}),
        ("embed_encoded", {"encoded": strings}),
    ):
        function = signatures[signature]
        with pytest.raises(
            tf.errors.InvalidArgumentError, match=r"group must be a vector.*\[2 1\]"
        ):
            function(**feed, group=tf.zeros([2, 1], tf.int32))
        with pytest.raises(
            tf.errors.InvalidArgumentError, match=r"images:\] \[2\] \[group:\] \[3\]"
        ):
            function(**feed, group=tf.zeros([3], tf.int32))


def test_an_empty_batch_gives_empty_outputs_on_every_signature(tmp_path):
    """A client's batch of 0 images gets [0, D] outputs, as from the ONNX export."""
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"nui": "dataset", "groups": ["a", "b"]}))
    folders = {
        "one group": export_saved_model(tiny_model(), tmp_path / "one" / "1", warmup=False),
        "flip": export_saved_model(tiny_model(), tmp_path / "flip" / "1", "flip", warmup=False),
        "two groups": export_saved_model(
            grouped_model(groups=2),
            tmp_path / "two" / "1",
            tta="flip",
            groups_file=groups,
            warmup=False,
        ),
    }
    # tiny_model: a 4-d embedding; grouped_model: 4-d embedding, 2-d nuisance.
    expected = {
        "one group": {"embedding": (0, 4)},
        "flip": {"embedding": (0, 4)},
        "two groups": {"embedding": (0, 4), "nuisance": (0, 2)},
    }
    for name, folder in folders.items():
        signatures = tf.saved_model.load(folder).signatures
        feeds = {
            "serving_default": {"images": tf.zeros([0, 32, 16, 3], tf.uint8)},
            "embed_encoded": {"encoded": tf.zeros([0], tf.string)},
        }
        for signature, feed in feeds.items():
            if name == "two groups":
                feed["group"] = tf.zeros([0], tf.int32)
            outputs = signatures[signature](**feed)
            shapes = {key: tuple(value.shape) for key, value in outputs.items()}
            assert shapes == expected[name], (name, signature)
            assert all(value.dtype == tf.float32 for value in outputs.values())


def test_version_folders_are_ascii_numbers(tmp_path):
    # "١" (Arabic-Indic one) and "²" pass str.isdigit; TF Serving parses versions as int64.
    for version in ("١", "²", "1.0", "-1"):
        with pytest.raises(ReIDError, match="VERSION in ASCII digits 0-9"):
            version_folder(tmp_path / "emb" / version)
    assert version_folder(tmp_path / "emb" / "12") == str(tmp_path / "emb" / "12")


def test_version_folders_tf_serving_would_skip_are_refused(tmp_path):
    # TF Serving parses a version folder as an int64 and skips one with a leading zero.
    for version in ("01", "00", "9223372036854775808", "99999999999999999999"):
        with pytest.raises(ReIDError, match="without leading zeros and would not serve"):
            version_folder(tmp_path / "emb" / version)
    for version in ("0", "10", "9223372036854775807"):
        assert version_folder(tmp_path / "emb" / version) == str(tmp_path / "emb" / version)


def test_models_with_non_finite_weights_or_outputs_are_not_exported(tmp_path):
    model = tiny_model()
    kernel, bias = model.get_layer("embedding").get_weights()
    model.get_layer("embedding").set_weights([kernel, np.array([0, np.inf, 0, 0], "float32")])
    with pytest.raises(ReIDError, match=r"model 'tiny': 1 of 2 weights hold NaN or infinity"):
        export_saved_model(model, tmp_path / "m" / "1")
    # Finite weights whose output overflows float32 on a mid-grey image (128 * 3 * 1e37).
    model.get_layer("embedding").set_weights([np.full_like(kernel, 1e37), np.zeros_like(bias)])
    with pytest.raises(ReIDError, match=r"non-finite embeddings .* for 1 of 1 mid-grey test image"):
        export_saved_model(model, tmp_path / "m" / "1")
    assert not (tmp_path / "m").exists()
