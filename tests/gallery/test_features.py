"""Sharded feature extraction: ``keras-reid embed`` and keras_reid.serving.gallery.features."""

import json
import os
import shutil

import keras
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from keras_reid.data import load_dataset
from keras_reid.data.images import load_image
from keras_reid.errors import ReIDError
from keras_reid.serving.gallery import embed_split, model_fingerprint, read_features
from keras_reid.serving.gallery.features import shard_rows
from tests.console import run


def conv_model(seed=0):
    """A small convolutional embedding: float rounding could depend on batch composition."""
    keras.utils.set_random_seed(seed)
    images = keras.Input((32, 16, 3), name="images")
    x = keras.layers.Rescaling(1 / 255)(images)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    embedding = keras.layers.Dense(16, name="embedding")(x)
    return keras.Model(images, {"embedding": embedding}, name=f"conv{seed}")


@pytest.fixture(scope="module")
def setting(tiny_synth, tmp_path_factory):
    base = tmp_path_factory.mktemp("embed")
    path = str(base / "model.keras")
    conv_model().save(path)
    return {"model": path, "data": f"market1501:{tiny_synth['synth-a']}", "base": base}


def test_shards_cover_every_row_once_cut_between_batches():
    for rows in (0, 1, 7, 8, 9, 100, 1001):
        for batch in (1, 3, 8, 128):
            for shards in (1, 2, 3, 7, 20):
                ranges = [shard_rows(rows, batch, i, shards) for i in range(shards)]
                covered = [r for start, stop in ranges for r in range(start, stop)]
                assert covered == list(range(rows))
                assert all(start % batch == 0 for start, _ in ranges)


def test_shards_concatenate_to_the_single_machine_result_exactly(setting):
    data, model = setting["data"], setting["model"]
    whole = setting["base"] / "whole"
    split = setting["base"] / "split"
    embed_split(model, data, "gallery", whole, batch_size=4)
    for shard in (2, 0, 1):  # the order machines finish in does not matter
        embed_split(model, data, "gallery", split, shard=shard, num_shards=3, batch_size=4)

    single, sharded = read_features([whole]), read_features([split])
    gallery = load_dataset("market1501", data.partition(":")[2]).gallery
    pd.testing.assert_frame_equal(sharded.table, gallery)
    pd.testing.assert_frame_equal(single.table, gallery)
    np.testing.assert_array_equal(sharded.embeddings, single.embeddings)
    assert sharded.meta["rows"] == len(gallery) and sharded.meta["num_shards"] == 3

    # Independently: the model on the decoded images, normalised by hand.
    keras_model = keras.models.load_model(model)
    images = np.stack([load_image(p, (32, 16)).numpy() for p in gallery.path])
    raw = keras_model.predict(images, verbose=0)["embedding"]
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(sharded.embeddings, expected, atol=1e-5)
    assert sharded.meta["model_sha256"] == model_fingerprint(keras_model)


def test_the_cli_writes_the_same_shard_and_names_its_rows(setting):
    out = setting["base"] / "cli"
    code, stdout, stderr = run(
        ["embed", setting["model"], "--data", setting["data"], "--out", out]
        + ["--shard", 1, "--num-shards", 3, "--batch-size", 4]
    )
    assert code == 0, stderr
    path = out / "part-00001-of-00003.parquet"
    library = embed_split(
        setting["model"], setting["data"], "gallery", setting["base"] / "lib", 1, 3, 4
    )
    mine, theirs = pq.read_table(path), pq.read_table(library)
    assert mine.drop_columns("embedding").equals(theirs.drop_columns("embedding"))
    np.testing.assert_array_equal(
        mine.column("embedding").to_pylist(), theirs.column("embedding").to_pylist()
    )
    rows = len(load_dataset("market1501", setting["data"].partition(":")[2]).gallery)
    start, stop = shard_rows(rows, 4, 1, 3)
    assert f"rows {start}..{stop - 1} of the {rows}" in stdout
    assert os.listdir(out) == ["part-00001-of-00003.parquet"]  # no temporary left


def test_missing_overlapping_and_mismatched_shards_are_refused(setting, tmp_path):
    data, model = setting["data"], setting["model"]
    halves, thirds = tmp_path / "halves", tmp_path / "thirds"
    for shard in (0, 1):
        embed_split(model, data, "gallery", halves, shard=shard, num_shards=2, batch_size=4)
    embed_split(model, data, "gallery", thirds, shard=1, num_shards=3, batch_size=4)
    first = halves / "part-00000-of-00002.parquet"
    second = halves / "part-00001-of-00002.parquet"

    with pytest.raises(ReIDError, match=r"shard\(s\) 1 of 2 are missing .*--shard I"):
        read_features([first])
    with pytest.raises(ReIDError, match="different extractions .*num_shards 3 vs 2"):
        read_features([first, second, thirds])
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "again.parquet").write_bytes(second.read_bytes())
    with pytest.raises(ReIDError, match="both hold shard 1 of 2"):
        read_features([halves, copy])
    with pytest.raises(ReIDError, match="given twice"):
        read_features([first, first, second])

    other = tmp_path / "other.keras"
    conv_model(seed=1).save(other)
    embed_split(str(other), data, "query", tmp_path / "q", batch_size=4)
    with pytest.raises(
        ReIDError,
        match=r"different models: \S+q/part-00000-of-00001.parquet "
        r"\(market1501 query, shard 0 of 1\) was embedded with \S+other.keras",
    ):
        read_features([halves, tmp_path / "q"])

    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(plain)
    with pytest.raises(ReIDError, match="not a keras-reid features file"):
        read_features([plain])
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(ReIDError, match="not a readable Parquet file"):
        read_features([junk])


def test_bad_shard_arguments_are_one_line_errors(setting, tmp_path):
    model, data = setting["model"], setting["data"]
    with pytest.raises(ReIDError, match=r"shard 2 does not exist in 2 shard\(s\)"):
        embed_split(model, data, "gallery", tmp_path, shard=2, num_shards=2)
    with pytest.raises(ReIDError, match="num_shards must be an integer >= 1"):
        embed_split(model, data, "gallery", tmp_path, num_shards=0)
    with pytest.raises(ReIDError, match="unknown split 'galery'"):
        embed_split(model, data, "galery", tmp_path)
    embed_split(model, data, "query", tmp_path, batch_size=4)
    with pytest.raises(ReIDError, match="exists; pass --overwrite"):
        embed_split(model, data, "query", tmp_path, batch_size=4)

    code, stdout, stderr = run(
        ["embed", model, "--data", data, "--out", tmp_path / "x", "--shard", 5, "--num-shards", 2]
    )
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert "shard 5 does not exist in 2 shard(s)" in lines[0]


def test_machines_may_mount_the_data_elsewhere_but_must_list_the_same_images(setting, tmp_path):
    root = setting["data"].partition(":")[2]
    here, there = tmp_path / "here", tmp_path / "there"
    shutil.copytree(root, here)
    shutil.copytree(root, there)
    model, out = setting["model"], tmp_path / "shards"
    embed_split(model, f"market1501:{here}", "gallery", out, 0, 2, batch_size=4)
    embed_split(model, f"market1501:{there}", "gallery", out, 1, 2, batch_size=4)
    whole = read_features([out])
    single = setting["base"] / "whole"
    if not single.exists():
        embed_split(model, setting["data"], "gallery", single, batch_size=4)
    np.testing.assert_array_equal(whole.embeddings, read_features([single]).embeddings)

    # A copy that lacks one image (and so lists one row fewer, or another image).
    removed = sorted((there / "bounding_box_test").iterdir())[0]
    removed.unlink()
    embed_split(model, f"market1501:{there}", "gallery", out, 1, 2, batch_size=4, overwrite=True)
    with pytest.raises(ReIDError, match="different lists of market1501 gallery images"):
        read_features([out])


def test_a_shard_of_another_model_is_named_with_both_fingerprints(setting, tmp_path):
    data, model = setting["data"], setting["model"]
    other = str(tmp_path / "other.keras")
    conv_model(seed=1).save(other)
    mixed, whole = tmp_path / "mixed", tmp_path / "whole"
    for shard, source in ((0, model), (1, other), (2, model)):
        embed_split(source, data, "gallery", mixed, shard=shard, num_shards=3, batch_size=4)
    for shard in (0, 1, 2):
        embed_split(model, data, "gallery", whole, shard=shard, num_shards=3, batch_size=4)
    odd = str(mixed / "part-00001-of-00003.parquet")
    fingerprints = [
        json.loads(pq.read_schema(mixed / name).metadata[b"keras_reid"])["model_sha256"]
        for name in ("part-00000-of-00003.parquet", "part-00001-of-00003.parquet")
    ]
    assert fingerprints[0] != fingerprints[1]

    code, out, err = run(["index", "build", mixed, "--out", tmp_path / "bad"], tmp_path / "err")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"keras-reid index: error: features of different models: {odd} (market1501 gallery, "
        f"shard 1 of 3) was embedded with {other} (sha256 {fingerprints[1][:12]}), but the "
        f"other 2 file(s) with {model} (sha256 {fingerprints[0][:12]}); embed it again with "
        f"{model} (--overwrite), or pass only the files of one model."
    ]
    assert not (tmp_path / "bad").exists()
    # The three shards of one model build an index, and nothing else is said.
    code, out, err = run(["index", "build", whole, "--out", tmp_path / "good"])
    assert code == 0 and err == "", err
    assert out.startswith(f"wrote {tmp_path / 'good'}: exact index of ")
    # A shard embedded with another test-time augmentation is another extraction too.
    flipped = tmp_path / "flipped"
    embed_split(model, data, "gallery", flipped, shard=1, num_shards=3, batch_size=4, tta="flip")
    shards = [whole / "part-00000-of-00003.parquet", flipped, whole / "part-00002-of-00003.parquet"]
    with pytest.raises(ReIDError, match="different extractions .*tta 'flip' vs None.*--tta"):
        read_features(shards)
