"""Feature extraction and test-time augmentation against hand-computed features."""

import gc
import weakref

import cv2
import keras
import numpy as np
import pytest

from keras_reid.errors import ReIDError
from keras_reid.serving import extract as inference
from keras_reid.serving.extract import extract_features, tta_views


def channel_mean_model(size=(8, 4)):
    """embedding = the mean of each colour channel: easy to compute by hand for any crop."""
    images = keras.Input((*size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(images)
    return keras.Model(images, {"embedding": keras.layers.Identity(name="embedding")(pooled)})


def test_tta_views_flip_and_five_crop_geometry():
    images = np.arange(2 * 9 * 5 * 3, dtype="float32").reshape(2, 9, 5, 3)
    flip = tta_views(images, "flip").numpy()
    assert flip.shape == (2, 2, 9, 5, 3)
    np.testing.assert_array_equal(flip[1], images[:, :, ::-1])
    crops = tta_views(images, "five-crop", image_size=(8, 4)).numpy()
    assert crops.shape == (5, 2, 8, 4, 3)
    # Centre ((9-8)//2, (5-4)//2) = (0, 0), then the four corners.
    for view, (y, x) in zip(crops, [(0, 0), (0, 0), (0, 1), (1, 0), (1, 1)], strict=True):
        np.testing.assert_array_equal(view, images[:, y : y + 8, x : x + 4])
    assert tta_views(images, "five-crop-flip", image_size=(8, 4)).shape[0] == 10


def test_extract_features_with_crops_matches_hand_computation(tmp_path):
    # A 9x5 image (the 8x4 model size * 1.125, rounded) whose top-left pixel is bright.
    image = np.zeros((9, 5, 3), np.uint8)
    image[0, 0] = (90, 180, 36)
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, image[:, :, ::-1])
    model = channel_mean_model()
    plain = extract_features(model, [path], progress=False)
    # Without TTA the image is resized to 8x4: the bright pixel's mass is spread,
    # but the channel ratios survive.
    assert plain.shape == (1, 3) and plain[0, 0] > 0
    five = extract_features(model, [path], tta="five-crop", progress=False)
    # Crop offsets: centre (0,0), top-left (0,0), top-right (0,1), bottom-left
    # (1,0), bottom-right (1,1). The pixel at (0,0) is inside the two crops at
    # (0,0) only: each crop's mean is pixel/32, and the five-crop mean 2/5 of it.
    expected = np.array([90, 180, 36], "float32") / 32 * 2 / 5
    np.testing.assert_allclose(five[0], expected, rtol=1e-5)
    flipped = extract_features(model, [path], tta="flip", progress=False)
    np.testing.assert_allclose(flipped, plain, rtol=1e-5)  # a mean ignores left/right


def test_bad_requests_are_named():
    model = channel_mean_model()
    with pytest.raises(ReIDError, match="unknown tta 'ten-crop'"):
        extract_features(model, ["x.jpg"], tta="ten-crop")
    with pytest.raises(ReIDError, match="no output 'nuisance'"):
        extract_features(model, ["x.jpg"], output="nuisance")
    with pytest.raises(ReIDError, match="empty"):
        extract_features(model, [])


def test_repeated_extraction_traces_once_and_sees_new_weights(tmp_path):
    # A table script scores many runs on many datasets; a validation callback
    # scores one model as it trains: one traced function per model, current weights.
    paths = []
    for index in range(3):
        path = str(tmp_path / f"{index}.png")
        cv2.imwrite(path, np.full((8, 4, 3), 40 * (index + 1), np.uint8))
        paths.append(path)
    inputs = keras.Input((8, 4, 3), name="images")
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(2, use_bias=False, name="embedding")
    model = keras.Model(inputs, {"embedding": dense(pooled)})
    first = extract_features(model, paths, progress=False)
    for _ in range(6):
        np.testing.assert_array_equal(extract_features(model, paths, progress=False), first)
    # TensorFlow's own count of the traces of the model's one function.
    [function] = inference._EMBED_FUNCTIONS[model].values()
    assert function.experimental_get_tracing_count() == 1
    del function
    dense.kernel.assign(dense.kernel * 2.0)
    np.testing.assert_allclose(extract_features(model, paths, progress=False), 2 * first, 1e-6)
    # The kept function does not keep a deleted model alive.
    gone = weakref.ref(model)
    del model, dense, inputs, pooled
    gc.collect()
    assert gone() is None
