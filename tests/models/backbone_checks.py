"""The checks every trunk goes through: stage names and shapes, last_stride, weights, .keras.

Each trunk's test states its expected stage shapes by hand (stride
arithmetic); these helpers compare the built trunk with them.
"""

import keras
import numpy as np
import pytest
from helpers import set_bn_statistics

from keras_reid.errors import ReIDError
from keras_reid.models import build_backbone


def images(input_shape, batch=2, seed=0):
    """Raw RGB images in [0, 255] of ``input_shape``."""
    return np.random.default_rng(seed).uniform(0, 255, (batch, *input_shape)).astype("float32")


def check_stages(name, input_shape, expected, **options):
    """The trunk's stages are exactly ``expected`` ({stage: (h, w, c)}, in order), with
    those shapes; the default output is the last one; an unknown stage is refused
    with a one-line error listing them. Returns the stage trunk."""
    trunk = build_backbone(name, input_shape, stages=tuple(expected), **options)
    assert trunk.name == "trunk"
    assert {k: tuple(v.shape[1:]) for k, v in trunk.output.items()} == expected
    outputs = trunk(images(input_shape))
    assert {k: tuple(v.shape[1:]) for k, v in outputs.items()} == expected
    default = build_backbone(name, input_shape, **options)
    assert default.name == "trunk"
    assert tuple(default.output.shape[1:]) == list(expected.values())[-1]
    listed = ", ".join(expected)
    with pytest.raises(
        ReIDError, match=f"stages must be a non-empty tuple of {listed}\\. "
    ) as info:
        build_backbone(name, input_shape, stages=("stage9",), **options)
    assert "\n" not in str(info.value) and "stages=('stage9',)" in str(info.value)
    return trunk


def check_last_stride(name, input_shape, **options):
    """last_stride=1 doubles the last map's height and width, keeps its channels,
    and leaves the other stages as they are."""
    maps = {}
    for stride in (2, 1):
        trunk = build_backbone(name, input_shape, last_stride=stride, **options)
        maps[stride] = tuple(trunk.output.shape[1:])
    (h, w, c) = maps[2]
    assert maps[1] == (2 * h, 2 * w, c)
    with pytest.raises(ReIDError, match=r"last_stride must be 1 or 2\. Received: last_stride=3"):
        build_backbone(name, input_shape, last_stride=3, **options)


def check_weight_file(name, input_shape, folder, suffix=".weights.h5", **options):
    """A trunk given the weight file of another (trained-looking) one computes the same
    outputs; a file of another architecture is one line naming it."""
    x = images(input_shape)
    source = set_bn_statistics(build_backbone(name, input_shape, **options), x)
    path = folder / f"{name}{suffix}"
    if suffix == ".weights.h5":
        source.layers[-1].save_weights(path)
    else:
        save_legacy_h5(source.layers[-1], path)
    loaded = build_backbone(name, input_shape, weights=str(path), **options)
    np.testing.assert_allclose(
        np.asarray(loaded(x, training=False)),
        np.asarray(source(x, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )
    other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)], name="other")
    wrong = folder / f"other{suffix}"
    if suffix == ".weights.h5":
        other.save_weights(wrong)
    else:
        save_legacy_h5(other, wrong)
    with pytest.raises(ReIDError, match=f"{name}: cannot load weights .*other") as info:
        build_backbone(name, input_shape, weights=str(wrong), **options)
    assert "\n" not in str(info.value)
    return loaded


def check_round_trip(trunk, folder, input_shape):
    """The trunk (dict or single output) saved to .keras reloads without custom_objects
    and computes the same, with BN statistics that make outputs vary."""
    x = images(input_shape, batch=3)
    set_bn_statistics(trunk, x)
    path = folder / "trunk.keras"
    trunk.save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.name == "trunk"
    got, want = reloaded.predict(x, verbose=0), trunk.predict(x, verbose=0)
    if isinstance(want, dict):
        assert sorted(got) == sorted(want)
        got, want = [got[k] for k in sorted(want)], [want[k] for k in sorted(want)]
    else:
        got, want = [got], [want]
    for value, expected in zip(got, want, strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5)
        assert np.ptp(value, axis=0).max() > 1e-4


def save_legacy_h5(model, path):
    """Weights in the layout of Keras' own ImageNet files (``*_notop.h5``): a group per
    layer with weights, in layer order, as ``keras.applications`` loads them."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
