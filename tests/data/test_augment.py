"""keras_reid.data.augment: each transform against what it should do to known images."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_reid.data.augment import Augment, resolve_augment
from keras_reid.errors import ReIDError

H, W = 32, 16
SEED = tf.constant([1, 2], tf.int64)


def ramp(batch=1):
    """Images whose value is the column index: a geometric change shows in the numbers."""
    columns = np.arange(W, dtype=np.float32)[None, None, :, None]
    return np.broadcast_to(columns, (batch, H, W, 3)).copy()


def flat(batch=1, value=100.0):
    return np.full((batch, H, W, 3), value, np.float32)


def seeds(count):
    return [tf.constant([seed, 0], tf.int64) for seed in range(count)]


def test_nothing_enabled_is_the_identity():
    images = np.random.default_rng(0).uniform(0, 255, (4, H, W, 3)).astype(np.float32)
    out = Augment(flip=0, crop_pad=0)(images, SEED)
    np.testing.assert_array_equal(out.numpy(), images)


def test_same_seed_same_result_other_seed_other_result():
    images = np.random.default_rng(0).uniform(0, 255, (8, H, W, 3)).astype(np.float32)
    augment = Augment(shift=0.1, zoom=0.2, blur=0.5)
    first = augment(images, SEED).numpy()
    np.testing.assert_array_equal(first, augment(images, SEED).numpy())
    assert not np.array_equal(first, augment(images, tf.constant([1, 3])).numpy())


def test_flip_probability_one_mirrors_every_image():
    out = Augment(flip=1.0, crop_pad=0)(ramp(3), SEED).numpy()
    np.testing.assert_array_equal(out, ramp(3)[:, :, ::-1])


def test_flip_half_mirrors_some_images_of_a_batch_independently():
    out = Augment(flip=0.5, crop_pad=0)(ramp(64), SEED).numpy()
    flipped = out[:, 0, 0, 0] == W - 1
    assert 10 < flipped.sum() < 54
    np.testing.assert_array_equal(out[flipped], ramp(64)[flipped][:, :, ::-1])
    np.testing.assert_array_equal(out[~flipped], ramp(64)[~flipped])


def test_crop_magnifies_by_one_plus_pad_at_a_random_offset_inside_the_image():
    pad = 0.125
    offsets = []
    for seed in seeds(20):
        out = Augment(flip=0, crop_pad=pad)(ramp(), seed).numpy()[0, 0, :, 0]
        # A ramp of slope 1 resized by 1 + pad and cropped: slope 1 / (1 + pad).
        np.testing.assert_allclose(np.diff(out), 1 / (1 + pad), rtol=1e-4)
        offsets.append(out[0])
    # The crop stays inside the resized image: offset in [0, pad / (1 + pad) × (W - 1)].
    assert min(offsets) >= 0 and max(offsets) <= pad / (1 + pad) * (W - 1) + 1e-4
    assert max(offsets) - min(offsets) > 0.5, "the offset varies with the seed"


def test_crop_of_a_flat_image_is_flat():
    out = Augment(crop_pad=0.125)(flat(4), SEED).numpy()
    np.testing.assert_allclose(out, 100.0, atol=1e-4)


def test_shift_moves_the_content_and_fills_black():
    outs = [Augment(flip=0, crop_pad=0, shift=0.25)(flat(), seed).numpy() for seed in seeds(10)]
    assert any((out == 0).any() for out in outs), "some border uncovered"
    # Slope of a ramp unchanged: a translation, no scaling.
    out = Augment(flip=0, crop_pad=0, shift=0.25)(ramp(), SEED).numpy()[0, H // 2, :, 0]
    inside = (out > 0) & (np.arange(W) > 0)
    np.testing.assert_allclose(np.diff(out)[inside[1:] & inside[:-1]], 1.0, rtol=1e-4)


def test_zoom_scales_within_its_range():
    zoom = 0.3
    slopes = []
    for seed in seeds(10):
        out = Augment(flip=0, crop_pad=0, zoom=zoom)(ramp(), seed).numpy()[0, H // 2, :, 0]
        # At the centre row the ramp's slope is 1 / scale, scale in [1 - zoom, 1 + zoom].
        slopes.append(np.diff(out)[W // 2 - 2 : W // 2 + 2].mean())
    assert all(1 / (1 + zoom) - 1e-4 <= slope <= 1 / (1 - zoom) + 1e-4 for slope in slopes)
    # The scale is drawn per image: zooming in and out, not the identity's slope 1.
    assert min(slopes) < 0.95 and max(slopes) > 1.05


def test_blur_matches_a_separable_gaussian_and_keeps_flat_images_flat():
    sigma = 1.5
    image = np.random.default_rng(1).uniform(0, 255, (1, H, W, 3)).astype(np.float32)
    augment = Augment(flip=0, crop_pad=0, blur=1.0, blur_sigma=(sigma, sigma))
    out = augment(image, SEED).numpy()[0]
    radius = math.ceil(3 * sigma)
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    padded = np.pad(image[0], [(radius, radius), (radius, radius), (0, 0)], mode="symmetric")
    vertical = sum(t * padded[i : i + H] for i, t in enumerate(taps))
    expected = sum(t * vertical[:, i : i + W] for i, t in enumerate(taps))
    np.testing.assert_allclose(out, expected, atol=1e-3)
    np.testing.assert_allclose(augment(flat(2), SEED).numpy(), 100.0, atol=1e-3)


def test_blur_probability_zero_point_five_blurs_some_images_only():
    images = np.random.default_rng(2).uniform(0, 255, (32, H, W, 3)).astype(np.float32)
    out = Augment(flip=0, crop_pad=0, blur=0.5)(images, SEED).numpy()
    unchanged = (out == images).all(axis=(1, 2, 3))
    assert 4 < unchanged.sum() < 28


def test_one_image_or_a_batch():
    images = np.random.default_rng(3).uniform(0, 255, (1, H, W, 3)).astype(np.float32)
    augment = Augment(shift=0.1, blur=0.5)
    np.testing.assert_array_equal(augment(images[0], SEED).numpy(), augment(images, SEED)[0])


def test_works_inside_a_tf_data_map_with_unknown_batch_size():
    dataset = tf.data.Dataset.from_tensor_slices(ramp(5)).batch(2)
    dataset = dataset.map(lambda images: Augment(blur=0.5)(images, SEED))
    assert [len(images) for images in dataset] == [2, 2, 1]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"flip": 1.5}, "flip=1.5"),
        ({"blur": -0.1}, "blur=-0.1"),
        ({"crop_pad": -1}, "crop_pad=-1"),
        ({"shift": 0.6}, "shift=0.6"),
        ({"zoom": 1.0}, "zoom=1.0"),
        ({"blur_sigma": (2.0, 1.0)}, r"blur_sigma=\(2.0, 1.0\)"),
    ],
)
def test_refuses_out_of_range_settings(arguments, message):
    with pytest.raises(ReIDError, match=f"Received: {message}"):
        Augment(**arguments)


def test_resolve_augment():
    assert resolve_augment(True) == Augment()
    assert resolve_augment(None) is None and resolve_augment(False) is None
    custom = Augment(flip=0.2)
    assert resolve_augment(custom) is custom
    assert resolve_augment({"crop_pad": 0.1, "blur_sigma": [0.5, 1.0]}) == Augment(
        crop_pad=0.1, blur_sigma=(0.5, 1.0)
    )
    assert Augment(**custom.get_config()) == custom
    with pytest.raises(ReIDError, match="unknown option.*rotate.*valid options: flip"):
        resolve_augment({"rotate": 10})
    with pytest.raises(ReIDError, match="Received: augment='yes'"):
        resolve_augment("yes")
