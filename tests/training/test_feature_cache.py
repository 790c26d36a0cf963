"""The trunk feature cache: contents, reuse, and rebuilds when the trunk, weights or size change."""

import logging
import os

import keras
import numpy as np
import pytest

from keras_reid.data.market1501 import read_market_layout
from keras_reid.data.pipeline import load_image
from keras_reid.models import build_embedding_model
from keras_reid.training.feature_cache import (
    cached_trunk_features,
    trunk_model,
    trunk_signature,
)


@pytest.fixture(scope="module")
def table(tiny_synth):
    return read_market_layout(tiny_synth["synth-b"], "synth-b").query.head(10)


def stage1(alpha=0.25, size=(64, 32), seed=0):
    keras.utils.set_random_seed(seed)
    return build_embedding_model(alpha=alpha, input_shape=(*size, 3), embedding_dim=8)


@pytest.fixture(scope="module")
def model():
    return stage1()


def images_of(table, size):
    return np.stack([load_image(p, size).numpy() for p in table["path"]]).astype("float32")


def test_features_of_each_image_and_its_flip(model, table, tmp_path):
    cache = cached_trunk_features(model, table, str(tmp_path / "q.npz"), batch_size=4)
    assert cache.built and cache.features.shape == (10, 2, 256)
    assert cache.features.dtype == np.float32
    assert list(cache.paths) == list(table["path"])
    images = images_of(table, (64, 32))
    trunk = trunk_model(model)
    np.testing.assert_allclose(
        cache.features[:, 0], trunk.predict(images, verbose=0), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        cache.features[:, 1], trunk.predict(images[:, :, ::-1], verbose=0), rtol=1e-4, atol=1e-5
    )
    assert cache.meta["trunk"] == trunk_signature(model)
    # Written by rename: no temporary file is left beside it.
    assert os.listdir(tmp_path) == ["q.npz"]


def test_same_model_and_table_reuse_the_file(model, table, tmp_path):
    path = str(tmp_path / "q.npz")
    first = cached_trunk_features(model, table, path)
    stamp = os.stat(path).st_mtime_ns
    second = cached_trunk_features(model, table, path)
    assert not second.built and os.stat(path).st_mtime_ns == stamp
    np.testing.assert_array_equal(first.features, second.features)
    # A rebuilt trunk with the same weights has the same signature, despite
    # Keras' per-process layer numbering.
    copy = stage1()
    copy.set_weights(model.get_weights())
    assert not cached_trunk_features(copy, table, path).built


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"seed": 1}, "other trunk weights"),
        ({"size": (96, 48)}, "image size"),
        ({"alpha": 0.5}, "another trunk"),
    ],
)
def test_another_trunk_weights_or_size_rebuilds(model, table, tmp_path, caplog, change, reason):
    path = str(tmp_path / "q.npz")
    cached_trunk_features(model, table, path)
    other = stage1(**change)
    with caplog.at_level(logging.INFO, logger="keras_reid.training"):
        cache = cached_trunk_features(other, table, path)
    assert cache.built
    assert any("rebuilding" in r.message and reason in r.message for r in caplog.records)
    assert cache.meta["trunk"] == trunk_signature(other)
    assert not cached_trunk_features(other, table, path).built


def test_weights_changed_in_place_rebuild(model, table, tmp_path):
    path = str(tmp_path / "q.npz")
    cached_trunk_features(model, table, path)
    weight = model.get_layer("trunk").weights[0]
    original = weight.numpy()
    weight.assign(original * 1.01)
    try:
        assert cached_trunk_features(model, table, path).built
    finally:
        weight.assign(original)


def test_another_table_or_a_damaged_file_rebuilds(model, table, tmp_path, caplog):
    path = str(tmp_path / "q.npz")
    cached_trunk_features(model, table, path)
    with caplog.at_level(logging.INFO, logger="keras_reid.training"):
        assert cached_trunk_features(model, table.head(6), path).features.shape[0] == 6
    assert any("another list of images" in r.message for r in caplog.records)
    with open(path, "wb") as stream:
        stream.write(b"truncated")
    with caplog.at_level(logging.INFO, logger="keras_reid.training"):
        assert cached_trunk_features(model, table, path).built
    assert any("unreadable" in r.message for r in caplog.records)
