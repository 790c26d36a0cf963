"""FeatureExtractor and load_model against embeddings computed by hand with numpy."""

import re
import sys

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

import keras_reid
from keras_reid.errors import ReIDError
from keras_reid.layers import GroupedDense
from keras_reid.serving.extractor import FeatureExtractor
from keras_reid.serving.model_io import inspect_model, load_model

SIZE = (8, 4)
RNG = np.random.default_rng(0)
W_EMB = RNG.normal(size=(SIZE[0] * SIZE[1] * 3, 5)).astype("float32")
W_NUI = RNG.normal(size=(3, 3, 2)).astype("float32")  # 3 groups, GAP features [3] -> 2


def linear_model(groups=None):
    """embedding = flatten(images) @ W_EMB; with ``groups``, nuisance = mean RGB @ W_NUI[group]."""
    images = keras.Input((*SIZE, 3), name="images")
    flat = keras.layers.Flatten()(images)
    dense = keras.layers.Dense(5, use_bias=False, name="embedding")
    outputs = {"embedding": dense(flat)}
    inputs = images
    if groups:
        group = keras.Input((), dtype="int32", name="group")
        pooled = keras.layers.GlobalAveragePooling2D()(images)
        grouped = GroupedDense(2, groups=groups, use_bias=False, name="nuisance")
        outputs["nuisance"] = grouped([pooled, group])
        inputs = {"images": images, "group": group}
    model = keras.Model(inputs, outputs, name="linear")
    dense.set_weights([W_EMB])
    if groups:
        grouped.set_weights([W_NUI[:groups]])
    return model


def by_hand(images, flip=False, normalize=True):
    images = images.astype("float32")
    z = images.reshape(len(images), -1) @ W_EMB
    if flip:
        z = (z + images[:, :, ::-1].reshape(len(images), -1) @ W_EMB) / 2
    return z / np.linalg.norm(z, axis=1, keepdims=True) if normalize else z


@pytest.fixture(scope="module")
def images():
    return RNG.integers(0, 256, size=(5, *SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def image_files(images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for index, image in enumerate(images):
        path = str(folder / f"{index}.png")  # lossless: the file holds exactly these pixels
        cv2.imwrite(path, image[:, :, ::-1])
        paths.append(path)
    return paths


def test_arrays_files_and_tables_give_the_hand_computed_embedding(images, image_files):
    extractor = FeatureExtractor(linear_model(), batch_size=2, progress=False)
    expected = by_hand(images)
    np.testing.assert_allclose(extractor.embed(images), expected, atol=1e-5)
    np.testing.assert_allclose(extractor.embed(list(images)), expected, atol=1e-5)
    np.testing.assert_allclose(extractor.embed(images[0]), expected[:1], atol=1e-5)
    np.testing.assert_allclose(extractor.embed(image_files), expected, atol=1e-5)
    table = pd.DataFrame({"path": image_files, "pid": range(5), "camid": 1})
    np.testing.assert_allclose(extractor.embed(table), expected, atol=1e-5)
    assert extractor.embed(images).dtype == np.float32


def test_flip_averages_before_normalising_and_normalize_off(images):
    flipped = FeatureExtractor(linear_model(), tta="flip", progress=False).embed(images)
    np.testing.assert_allclose(flipped, by_hand(images, flip=True), atol=1e-5)
    raw = FeatureExtractor(linear_model(), normalize=False, progress=False).embed(images)
    np.testing.assert_allclose(raw, by_hand(images, normalize=False), rtol=1e-5, atol=1e-3)


def test_files_of_another_size_are_resized(tmp_path):
    # A uniform colour stays that colour through any bilinear resize.
    path = str(tmp_path / "big.png")
    colour = np.array([200, 30, 90], np.uint8)
    cv2.imwrite(path, np.tile(colour[::-1], (40, 17, 1)))
    embedded = FeatureExtractor(linear_model(), progress=False).embed([path])
    np.testing.assert_allclose(embedded, by_hand(np.tile(colour, (1, *SIZE, 1))), atol=1e-5)


def test_groups_choose_the_nuisance_weights(images):
    extractor = FeatureExtractor(linear_model(groups=3), progress=False)
    assert inspect_model(extractor.model).groups == 3
    groups = np.array([2, 0, 1, 1, 0])
    pooled = images.astype("float32").mean(axis=(1, 2))
    expected = np.stack([pooled[i] @ W_NUI[g] for i, g in enumerate(groups)])
    nuisance = extractor.embed(images, output="nuisance", group=groups)
    np.testing.assert_allclose(nuisance, expected, rtol=1e-5, atol=1e-3)  # not normalised
    np.testing.assert_allclose(
        extractor.embed(images, output="nuisance", group=1), pooled @ W_NUI[1], rtol=1e-5
    )
    # z_id does not read the group: group 0 is used when none is given.
    np.testing.assert_allclose(extractor.embed(images), by_hand(images), atol=1e-5)
    with pytest.raises(ReIDError, match="has 3 θ_nui groups: pass group="):
        extractor.embed(images, output="nuisance")
    with pytest.raises(ReIDError, match=r"group values must be in \[0, 3\)"):
        extractor.embed(images, output="nuisance", group=3)
    with pytest.raises(ReIDError, match="5 ints"):
        extractor.embed(images, output="nuisance", group=[0, 1])
    one_group = FeatureExtractor(linear_model(groups=1), progress=False)
    np.testing.assert_allclose(
        one_group.embed(images, output="nuisance"), pooled @ W_NUI[0], rtol=1e-5
    )


def test_progress_bar_for_inputs_longer_than_a_batch(images, capsys, monkeypatch):
    # A log file or a pipe gets no bar (its carriage returns are noise there).
    FeatureExtractor(linear_model(), batch_size=2).embed(images)
    assert "embed" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # a terminal
    FeatureExtractor(linear_model(), batch_size=2).embed(images)
    assert "embed" in capsys.readouterr().err
    FeatureExtractor(linear_model(), batch_size=8).embed(images)
    assert "embed" not in capsys.readouterr().err


def test_bad_images_name_the_expected_form(images, image_files, tmp_path):
    extractor = FeatureExtractor(linear_model(), progress=False)
    with pytest.raises(ReIDError, match=r"expected uint8 RGB images \[N, 8, 4, 3\].*float32"):
        extractor.embed(images.astype("float32"))
    with pytest.raises(ReIDError, match=r"\[N, 8, 4, 3\].*shape \(2, 16, 8, 3\)"):
        extractor.embed(np.zeros((2, 16, 8, 3), np.uint8))
    # Wrong width, channels or rank: each names the expected and the received shape.
    for shape in ((2, 8, 8, 3), (2, 8, 4, 1), (2, 8, 4), (1, 2, 8, 4, 3), (8, 4, 3, 1)):
        expected = rf"\[N, 8, 4, 3\].*uint8 array of shape {re.escape(str(shape))}"
        with pytest.raises(ReIDError, match=expected):
            extractor.embed(np.zeros(shape, np.uint8))
    # A list holds single images: a batch in it is not silently cut to its first image.
    with pytest.raises(ReIDError, match=r"\[8, 4, 3\] each.*shape \(2, 8, 4, 3\)"):
        extractor.embed([images[0], images[:2]])
    with pytest.raises(ReIDError, match=r"\[8, 4, 3\] each.*shape \(8, 4, 1\)"):
        extractor.embed([images[0], images[1, :, :, :1]])
    with pytest.raises(ReIDError, match="1 image file\\(s\\) not found"):
        extractor.embed([image_files[0], str(tmp_path / "missing.jpg")])
    with pytest.raises(ReIDError, match="only image paths or only uint8 arrays"):
        extractor.embed([image_files[0], images[0]])
    with pytest.raises(ReIDError, match="cannot embed a dict"):
        extractor.embed({"images": images})
    with pytest.raises(ReIDError, match="empty"):
        extractor.embed([])
    with pytest.raises(ReIDError, match="no 'path' column"):
        extractor.embed(pd.DataFrame({"pid": [1]}))
    with pytest.raises(ReIDError, match="no served output 'nuisance'"):
        extractor.embed(images, output="nuisance")
    with pytest.raises(ReIDError, match="no group input"):
        extractor.embed(images, group=0)
    with pytest.raises(ReIDError, match="unknown tta 'five-crop'"):
        FeatureExtractor(linear_model(), tta="five-crop")
    with pytest.raises(ReIDError, match="batch_size must be a positive integer"):
        FeatureExtractor(linear_model(), batch_size=0)


def test_bad_models_name_the_expected_form(tmp_path):
    features = keras.Input((4,), name="features")
    no_embedding = keras.Model(features, {"logits": keras.layers.Dense(2, name="logits")(features)})
    with pytest.raises(ReIDError, match="has no 'embedding' output \\(outputs: logits\\)"):
        FeatureExtractor(no_embedding)
    not_images = keras.Model(
        features, {"embedding": keras.layers.Dense(2, name="embedding")(features)}
    )
    with pytest.raises(ReIDError, match=r"image input of shape \(None, 4\); expected"):
        FeatureExtractor(not_images)
    group = keras.Input((), dtype="int32", name="group")
    autoencoder = keras.Model(
        {"features": features, "group": group},
        {"embedding": keras.layers.Dense(2, name="embedding")(features)},
    )
    with pytest.raises(ReIDError, match="takes the inputs features, group; expected images"):
        FeatureExtractor(autoencoder)
    with pytest.raises(ReIDError, match="expected a keras.Model or the path"):
        FeatureExtractor(42)


def test_load_model_checks_the_file(tmp_path):
    path = tmp_path / "model.keras"
    linear_model().save(path)
    assert keras_reid.load_model(path).output_names == ["embedding"]
    extractor = FeatureExtractor(str(path), progress=False)
    assert extractor.image_size == SIZE
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    with pytest.raises(ReIDError, match="notes.keras exists but is not a Keras model file"):
        load_model(text)
    with pytest.raises(ReIDError, match="no model file"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ReIDError, match="is a folder; pass the path of a .keras"):
        load_model(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ReIDError, match="a SavedModel: load it with tf.saved_model.load"):
        load_model(tmp_path)
    with pytest.raises(ReIDError, match="no 'nuisance' output"):
        load_model(path, output="nuisance")


def test_non_finite_weights_and_embeddings_are_refused(images, tmp_path):
    # A NaN weight: refused before anything is computed, naming the weight.
    model = linear_model()
    kernel = W_EMB.copy()
    kernel[3, 1] = np.nan
    model.get_layer("embedding").set_weights([kernel])
    with pytest.raises(ReIDError, match=r"model 'linear': 1 of 1 weights hold NaN or infinity "):
        FeatureExtractor(model)
    path = tmp_path / "nan.keras"
    model.save(path)
    with pytest.raises(ReIDError, match=rf"{re.escape(str(path))}: 1 of 1 weights .*embedding"):
        FeatureExtractor(str(path))
    with pytest.raises(ReIDError, match="lower learning rate"):
        load_model(path)
    # Finite weights that overflow float32 on bright images only: rows counted.
    model.get_layer("embedding").set_weights([np.full_like(W_EMB, 1e36)])
    extractor = FeatureExtractor(model, progress=False)
    dark = np.zeros((3, *SIZE, 3), np.uint8)
    np.testing.assert_array_equal(extractor.embed(dark, output="embedding"), 0.0)
    batch = np.concatenate([dark, images[:2]])  # 96 pixel values * up to 255 * 1e36 > 3.4e38
    with pytest.raises(ReIDError, match=r"non-finite embeddings .* for 2 of 5 images .*\[3, 4\]"):
        extractor.embed(batch)


def test_plain_tensor_and_sequential_embedding_models(images, tmp_path):
    """A single output whose layer is named "embedding" is an embedding model too."""
    inputs = keras.Input((*SIZE, 3), name="images")
    dense = keras.layers.Dense(5, use_bias=False, name="embedding")
    plain = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([W_EMB])
    sequential = keras.Sequential(
        [keras.Input((*SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(5, use_bias=False)]
    )
    sequential.layers[-1].name = "embedding"
    sequential.layers[-1].set_weights([W_EMB])
    for model in (plain, sequential):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        for source in (model, str(path)):
            embedded = FeatureExtractor(source, progress=False).embed(images)
            np.testing.assert_allclose(embedded, by_hand(images), atol=1e-5)
        assert load_model(path).output_names == ["embedding"]
    inputs = keras.Input((*SIZE, 1))
    dense = keras.layers.Dense(2, name="embedding")
    grey = keras.Model(inputs, {"embedding": dense(keras.layers.Flatten()(inputs))})
    with pytest.raises(ReIDError, match=r"takes 1-channel images .*input_shape=\(8, 4, 3\)"):
        FeatureExtractor(grey)
