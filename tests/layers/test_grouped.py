"""GroupedDense: a weight set per group, checked against a numpy loop over the samples."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_reid.layers.grouped import GroupedDense, copy_group_weights
from tests.helpers import config_round_trip, fit_one_step, save_and_reload


def numpy_loop(x, groups, kernel, bias, activation=lambda v: v):
    """The expectation, one sample at a time: x[i] @ kernel[g_i] + bias[g_i]."""
    return np.stack(
        [activation(x[i] @ kernel[g] + bias[g]) for i, g in enumerate(np.ravel(groups))]
    )


def built_layer(units=4, groups=3, input_dim=5, **kwargs):
    layer = GroupedDense(units, groups, **kwargs)
    layer.build([(None, input_dim), (None,)])
    # Non-zero biases, so that routing the bias is tested too.
    layer.bias.assign(np.random.default_rng(1).normal(size=layer.bias.shape))
    return layer


@pytest.mark.parametrize("group_shape", ["flat", "column"])
def test_routing_matches_a_numpy_loop(group_shape):
    rng = np.random.default_rng(0)
    layer = built_layer(groups=4)
    x = rng.normal(size=(9, 5)).astype("float32")
    # Group 3 has no sample: an empty partition must not break the batch.
    groups = np.array([0, 2, 1, 2, 0, 1, 1, 0, 2], np.int32)
    if group_shape == "column":
        groups = groups[:, None]
    expected = numpy_loop(x, groups, layer.kernel.numpy(), layer.bias.numpy())
    np.testing.assert_allclose(layer([x, groups]).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_activation_and_a_single_group_is_a_dense_layer():
    rng = np.random.default_rng(0)
    layer = built_layer(groups=1, activation="relu")
    x = rng.normal(size=(6, 5)).astype("float32")
    expected = np.maximum(x @ layer.kernel.numpy()[0] + layer.bias.numpy()[0], 0)
    # With one group, the group input is not read at all.
    np.testing.assert_allclose(layer([x, np.zeros(6)]).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert layer.supports_jit and not GroupedDense(2, groups=2).supports_jit


def test_gradients_reach_only_the_groups_used():
    rng = np.random.default_rng(0)
    layer = built_layer(groups=3)
    x = rng.normal(size=(7, 5)).astype("float32")
    groups = np.array([0, 0, 2, 2, 2, 0, 0], np.int32)
    upstream = rng.normal(size=(7, 4)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer([x, groups]) * upstream)
    d_kernel, d_bias = tape.gradient(loss, [layer.kernel.value, layer.bias.value])
    for g in range(3):
        rows = groups == g
        np.testing.assert_allclose(d_kernel[g], x[rows].T @ upstream[rows], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(d_bias[g], upstream[rows].sum(0), rtol=1e-5, atol=1e-5)
    assert not np.any(d_kernel[1].numpy())


def test_each_group_is_initialised_like_a_dense_kernel():
    keras.utils.set_random_seed(0)
    layer = built_layer(units=256, groups=3, input_dim=256)
    kernel = layer.kernel.numpy()
    # glorot_uniform on [256, 256]: uniform(+-sqrt(6 / 512)), std sqrt(2 / 512).
    for g in range(3):
        assert abs(kernel[g].std() - np.sqrt(2 / 512)) < 0.005
    assert not np.allclose(kernel[0], kernel[1])


def test_out_of_range_group_is_an_error_naming_the_layer():
    layer = built_layer(groups=2, name="nui_fc")
    x = np.ones((2, 5), "float32")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="nui_fc: a group index is >= groups=2"
    ):
        layer([x, np.array([0, 2])])
    with pytest.raises(tf.errors.InvalidArgumentError, match="nui_fc: a group index is negative"):
        layer([x, np.array([0, -1])])


@pytest.mark.parametrize("kwargs", [{"units": 0}, {"units": 4, "groups": 0}, {"units": 2.5}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        GroupedDense(**kwargs)


def test_config_round_trip_and_save_reload(tmp_path):
    layer = GroupedDense(3, groups=4, activation="relu", name="nui_fc")
    config_round_trip(layer)
    features = keras.Input((5,))
    group = keras.Input((), dtype="int32")
    model = keras.Model(
        [features, group], GroupedDense(3, groups=4, name="grouped")([features, group])
    )
    x = [np.random.default_rng(0).normal(size=(6, 5)).astype("float32"), np.arange(6) % 4]
    reloaded = save_and_reload(model, tmp_path, x)
    assert reloaded.get_layer("grouped").groups == 4


def test_fit_one_step_trains_the_used_groups_only():
    features = keras.Input((5,))
    group = keras.Input((), dtype="int32")
    layer = GroupedDense(2, groups=3)
    model = keras.Model([features, group], layer([features, group]))
    before = layer.kernel.numpy().copy()
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    groups = np.array([0, 1, 0, 1, 0, 1, 0, 1], np.int32)
    logs = fit_one_step(model, [x, groups], np.zeros((8, 2), "float32"), loss="mse")
    assert np.isfinite(logs["loss"])
    after = layer.kernel.numpy()
    assert not np.allclose(after[:2], before[:2])
    np.testing.assert_array_equal(after[2], before[2])


def test_copy_group_weights_keeps_old_slices_and_fresh_new_ones():
    old = built_layer(groups=2)
    wider = built_layer(groups=5)
    fresh = wider.kernel.numpy().copy()
    copy_group_weights(old, wider)
    np.testing.assert_array_equal(wider.kernel.numpy()[:2], old.kernel.numpy())
    np.testing.assert_array_equal(wider.bias.numpy()[:2], old.bias.numpy())
    np.testing.assert_array_equal(wider.kernel.numpy()[2:], fresh[2:])
    # Routing after the copy: the old groups give the old layer's outputs.
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    groups = np.array([0, 1, 1, 0])
    np.testing.assert_allclose(wider([x, groups]), old([x, groups]), rtol=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        copy_group_weights(old, built_layer(groups=3, input_dim=6))
    with pytest.raises(ValueError, match="cannot copy 3"):
        copy_group_weights(old, wider, groups=3)
