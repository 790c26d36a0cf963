"""Damaged images through the real console script and FeatureExtractor: named, never a traceback.

One Market-1501-layout tree holds a damaged file of every kind that a folder
listing can show (``tests/faults/damage.py``), spread so that each command
meets some: three in train (every P×K batch holds id 0002, whose K images
include one), five in query (read first by ``evaluate``), three in the gallery.
``datasets --check``, ``evaluate``, ``train embedding`` and ``search`` run as
subprocesses of the installed ``keras-reid``, with stderr into a file or a
pipe; the per-kind reasons are checked in-process by tests/data/test_pipeline.py.

A chmod-000 file is readable by root: when the tests run as root, the
subprocesses run without CAP_DAC_OVERRIDE (``setpriv``), so that they meet the
"permission denied" a user would; where that is impossible the file is left
out and ``test_permission_denied_is_covered`` says why.
"""

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from helpers import TINY_TRUNK

from keras_reid.data import load_dataset
from keras_reid.data.dataset import make_table
from keras_reid.errors import ReIDError
from tests.data.fixtures import write_image
from tests.faults.damage import DAMAGE, damage, unprivileged

FIX = "keras-reid datasets NAME:ROOT --check lists them all"

GOOD = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg",
        "0007_c6s2_001234_02.jpg",
    ],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c4s1_000101_00.jpg"],
    "bounding_box_test": ["0001_c2s1_000301_01.jpg", "0003_c5s1_000201_01.jpg"],
}
BAD = {
    "bounding_box_train": {
        "0002_c3s1_000551_01.jpg": "truncated_jpeg",
        "0007_c2s2_001300_01.jpg": "empty",
        "0007_c3s2_001400_01.jpg": "corrupt_jpeg",
    },
    "query": {
        "0001_c2s1_001100_00.jpg": "text",
        "0003_c5s1_000150_00.jpg": "symlink_loop",
        "0004_c1s1_000200_00.jpg": "folder",
        "0005_c2s1_000300_00.jpg": "no_permission",
        "0006_c3s1_000400_00.jpg": "jpeg_header_only",
    },
    "bounding_box_test": {
        "0004_c3s1_000300_01.jpg": "truncated_png",
        "0005_c4s1_000400_01.jpg": "broken_symlink",
        "0006_c5s1_000500_01.jpg": "corrupt_jpeg",
    },
}
SPLITS = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}

TINY_MODEL = {**TINY_TRUNK, "input_shape": (64, 32, 3), "embedding_dim": 8}


@pytest.fixture(scope="module")
def damaged_market(tmp_path_factory):
    """(root, {split: [(path, reason)] in table order}, command prefix)."""
    root = tmp_path_factory.mktemp("damaged") / "market"
    probe = damage(root / "probe" / "x.jpg", "no_permission")
    prefix = unprivileged(probe)
    os.chmod(probe, 0o644)
    shutil.rmtree(root / "probe")
    expected = {}
    for folder, names in GOOD.items():
        for name in names:
            write_image(str(root / folder / name), 32, 16)
        bad = []
        for name, kind in sorted(BAD[folder].items()):
            if kind == "no_permission" and prefix is None:
                continue
            bad.append((damage(root / folder / name, kind), DAMAGE[kind]))
        expected[SPLITS[folder]] = bad
    yield root, expected, prefix
    for folder, names in BAD.items():  # let pytest clean up the chmod-000 file
        for name in names:
            path = root / folder / name
            if not path.is_symlink() and path.is_file():
                os.chmod(path, 0o644)


def keras_reid(prefix, args, stderr_to, tmp_path):
    """Run the installed console script; (exit status, stdout, stderr)."""
    script = shutil.which("keras-reid", path=os.path.dirname(sys.executable))
    script = script or shutil.which("keras-reid")
    assert script, "the keras-reid console script is not installed"
    command = [*(prefix or []), script, *args]
    if stderr_to == "file":
        path = tmp_path / f"stderr-{len(os.listdir(tmp_path))}.txt"
        with open(path, "wb") as stderr:
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, timeout=300)
        err = path.read_text()
    else:
        result = subprocess.run(command, capture_output=True, timeout=300)
        err = result.stderr.decode()
    return result.returncode, result.stdout.decode(), err


def message(bad, where, fix=FIX):
    """The expected one-line message for ``bad`` [(path, reason)] in ``where``."""
    examples = ", ".join(f"{path} ({reason})" for path, reason in bad[:3])
    more = ", ..." if len(bad) > 3 else ""
    places = f" in {where}" if where else ""
    return (
        f"{len(bad)} unreadable image(s){places}, e.g. {examples}{more}; delete or re-extract "
        f"them ({fix})."
    )


def assert_one_line(err, command, expected):
    for raw in ("Traceback", "InvalidArgumentError", "UnknownError", "PermissionDeniedError"):
        assert raw not in err, err
    # One line: not even TensorFlow's "Premature end of JPEG data" before it.
    assert err.strip().splitlines() == [f"keras-reid {command}: error: {expected}"], err


@pytest.mark.parametrize("stderr_to", ["file", "pipe"])
def test_datasets_check_lists_every_damaged_file_with_its_reason(
    damaged_market, tmp_path, stderr_to
):
    root, expected, prefix = damaged_market
    code, out, err = keras_reid(
        prefix, ["datasets", f"market1501:{root}", "--check"], stderr_to, tmp_path
    )
    assert code == 2
    everything = expected["train"] + expected["query"] + expected["gallery"]
    listed = [line for line in out.splitlines() if line.startswith("unreadable: ")]
    assert listed == [f"unreadable: {path} ({reason})" for path, reason in everything]
    where = "market1501/train, market1501/query, market1501/gallery"
    assert_one_line(err, "datasets", message(everything, where, "listed above"))


def test_evaluate_names_the_damaged_query_and_gallery_images(damaged_market, tmp_path):
    from keras_reid.models import build_embedding_model

    root, expected, prefix = damaged_market
    model = tmp_path / "tiny.keras"
    build_embedding_model(**TINY_MODEL).save(model)
    out = tmp_path / "report"
    args = ["evaluate", str(model), "--data", f"market1501:{root}", "--out", str(out)]
    code, _, err = keras_reid(prefix, args, "pipe", tmp_path)
    assert code == 2
    # The query's bad images stop the extraction; the gallery's are named too.
    bad, where = expected["query"] + expected["gallery"], "market1501/query, market1501/gallery"
    assert_one_line(err, "evaluate", message(bad, where))
    assert not out.exists() or not os.listdir(out)


def test_train_names_the_damaged_training_images(damaged_market, tmp_path):
    root, expected, prefix = damaged_market
    config = {
        "data": {"train": [f"market1501:{root}"]},
        "model": {**TINY_TRUNK, "input_shape": [64, 32, 3], "embedding_dim": 8},
        "losses": {"embedding": {"name": "batch_hard", "margin": "soft"}},
        "batches": {"p": 2, "k": 2},
        "schedule": {"base_lr": 1e-3, "decay_start_epoch": 1, "decay_end_epoch": 2},
        "train": {"epochs": 1, "verbose": 0},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    args = ["train", "embedding", "--config", str(path), "--out", str(tmp_path / "run")]
    code, _, err = keras_reid(prefix, args, "file", tmp_path)
    assert code == 2
    assert_one_line(err, "train", message(expected["train"], "market1501"))
    assert not (tmp_path / "run" / "model.keras").exists()


@pytest.mark.parametrize("stderr_to", ["file", "pipe"])
def test_search_names_the_damaged_query_images(damaged_market, tmp_path, stderr_to):
    import keras
    import numpy as np

    from keras_reid.serving.gallery import model_fingerprint
    from keras_reid.serving.gallery.index import GalleryIndex

    root, _, prefix = damaged_market
    keras.utils.set_random_seed(0)
    images = keras.Input((16, 8, 3), name="images")
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(images))
    model = keras.Model(images, {"embedding": keras.layers.Dense(4, name="embedding")(flat)})
    model.save(tmp_path / "tiny.keras")
    gallery = np.eye(4, dtype=np.float32)
    table = make_table([(f"/g/{i}.jpg", i, 0) for i in range(4)], "toy")
    meta = {"model": str(tmp_path / "tiny.keras"), "model_sha256": model_fingerprint(model)}
    GalleryIndex.build(gallery, table, meta=meta).save(tmp_path / "index")
    # libjpeg writes a line of its own for each of these two.
    bad = [
        (str(root / "query" / "0006_c3s1_000400_00.jpg"), "truncated JPEG"),
        (str(root / "bounding_box_test" / "0006_c5s1_000500_01.jpg"), "damaged JPEG"),
    ]
    good = str(root / "query" / GOOD["query"][0])
    args = ["search", str(tmp_path / "index"), "--model", str(tmp_path / "tiny.keras"), good]
    code, out, err = keras_reid(prefix, [*args, *[path for path, _ in bad]], stderr_to, tmp_path)
    assert code == 2 and out == ""
    assert_one_line(err, "search", message(bad, None))


def test_permission_denied_is_covered(damaged_market):
    _, expected, prefix = damaged_market
    if prefix is None:
        pytest.skip(
            "running as root without setpriv (or without the right to drop CAP_DAC_OVERRIDE): "
            "root reads chmod-000 files, so no subprocess here can meet 'permission denied'"
        )
    assert any(reason == "permission denied" for _, reason in expected["query"])


@pytest.fixture(scope="module")
def extractor():
    from keras_reid import FeatureExtractor
    from keras_reid.models import build_embedding_model

    return FeatureExtractor(build_embedding_model(**TINY_MODEL))


@pytest.mark.parametrize("kind", [kind for kind in DAMAGE if kind != "missing"])
def test_feature_extractor_names_each_damaged_file(extractor, tmp_path, kind):
    good = [str(tmp_path / f"good{i}.jpg") for i in range(2)]
    for path in good:
        write_image(path, 32, 16)
    bad = damage(tmp_path / "bad.jpg", kind)
    if kind == "no_permission" and os.access(bad, os.R_OK):
        pytest.skip("root reads chmod-000 files: the console script tests above cover this case")
    with pytest.raises(ReIDError) as caught:
        extractor.embed([good[0], bad, good[1]])
    assert str(caught.value) == message([(bad, DAMAGE[kind])], None)
    assert extractor.embed(good).shape == (2, 8)


def test_feature_extractor_names_the_dataset_of_a_table(damaged_market, extractor):
    root, expected, prefix = damaged_market
    table = load_dataset("market1501", root).gallery
    with pytest.raises(ReIDError) as caught:
        extractor.embed(table)
    assert str(caught.value) == message(expected["gallery"], "market1501")


def test_embae_feature_cache_names_damaged_files_and_writes_nothing(tmp_path):
    from keras_reid.models import build_embedding_model
    from keras_reid.training.feature_cache import cached_trunk_features

    model = build_embedding_model(**TINY_MODEL)
    write_image(str(tmp_path / "a.jpg"), 32, 16)
    bad = damage(tmp_path / "b.jpg", "truncated_jpeg")
    table = make_table([(str(tmp_path / "a.jpg"), 1, 0), (bad, 2, 0)], "toy")
    cache = tmp_path / "cache" / "toy.npz"
    with pytest.raises(ReIDError) as caught:
        cached_trunk_features(model, table, str(cache), progress=False)
    assert str(caught.value) == message([(bad, "truncated JPEG")], "toy")
    assert not cache.exists()
