"""The trunk feature cache: contents, reuse, and rebuilds when the trunk, weights or size change."""

import logging
import os

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

from keras_reid.data.images import load_image
from keras_reid.data.market1501 import read_market_layout
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


@pytest.fixture(scope="module")
def lively():
    """A trunk whose untrained features are far from zero (~4e-3, differing by ~1e-3 between
    shifted crops): a fresh MobileNet gives ~1e-18 everywhere, too small to tell views apart."""
    keras.utils.set_random_seed(0)
    return build_embedding_model("small_convnet", input_shape=(64, 32, 3), embedding_dim=8)


def images_of(table, size):
    return np.stack([load_image(p, size).numpy() for p in table["path"]]).astype("float32")


def test_features_of_each_image_and_its_flip(lively, table, tmp_path):
    model = lively
    cache = cached_trunk_features(model, table, str(tmp_path / "q.npz"), batch_size=4)
    assert cache.built and cache.features.shape == (10, 2, 256)
    assert cache.features.dtype == np.float32
    assert list(cache.paths) == list(table["path"])
    images = images_of(table, (64, 32))
    trunk = trunk_model(model)
    np.testing.assert_allclose(
        cache.features[:, 0], trunk.predict(images, verbose=0), rtol=1e-4, atol=1e-7
    )
    np.testing.assert_allclose(
        cache.features[:, 1], trunk.predict(images[:, :, ::-1], verbose=0), rtol=1e-4, atol=1e-7
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


def test_ten_views_are_hermans_five_crops_and_their_mirrors(lively, tmp_path):
    """Hermans et al.'s test-time views: a 12.5% larger resize, five crops, and their flips."""
    # Images stored at the load size (72x36 for a 64x32 model), so that the
    # resize is the identity and the reference is plain slicing.
    rng = np.random.default_rng(0)
    paths = []
    for index in range(3):
        path = str(tmp_path / f"{index}.png")
        cv2.imwrite(path, rng.integers(0, 256, (72, 36, 3), dtype=np.uint8))
        paths.append(path)
    table = {"path": paths}
    model = lively
    cache = cached_trunk_features(
        model, pd.DataFrame(table), str(tmp_path / "ten.npz"), views="ten"
    )
    assert cache.features.shape == (3, 10, 256)
    big = np.stack([cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in paths])
    big = big.astype("float32")
    # (top, left) of the 64x32 crops: centre, top-left, top-right, bottom-left, bottom-right.
    corners = [(4, 2), (0, 0), (0, 4), (8, 0), (8, 4)]
    crops = [big[:, y : y + 64, x : x + 32] for y, x in corners]
    expected = crops + [crop[:, :, ::-1] for crop in crops]
    trunk = trunk_model(model)
    for view, images in enumerate(expected):
        np.testing.assert_allclose(
            cache.features[:, view],
            trunk.predict(np.ascontiguousarray(images), verbose=0),
            rtol=1e-4,
            atol=1e-7,
            err_msg=f"view {view}",
        )
    # A file of other views is rebuilt, not reused.
    flip_path = str(tmp_path / "flip.npz")
    cached_trunk_features(model, pd.DataFrame(table), flip_path)
    assert cached_trunk_features(model, pd.DataFrame(table), flip_path, views="ten").built


def test_unknown_views_are_refused(model, table, tmp_path):
    from keras_reid.errors import ReIDError

    with pytest.raises(ReIDError, match=r"unknown views 'nine'; expected one of: flip, ten"):
        cached_trunk_features(model, table, str(tmp_path / "x.npz"), views="nine")
    assert not os.listdir(tmp_path)
