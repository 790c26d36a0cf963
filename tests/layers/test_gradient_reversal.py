import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import config_round_trip, fit_one_step, save_and_reload

from keras_reid.layers import GradientReversal


def test_identity_forward_and_scaled_negated_gradient():
    x = tf.Variable(np.random.default_rng(0).normal(size=(3, 4)).astype("float32"))
    upstream = np.arange(12, dtype="float32").reshape(3, 4)
    with tf.GradientTape() as tape:
        y = GradientReversal(scale=0.5)(x)
        total = tf.reduce_sum(y * upstream)
    np.testing.assert_array_equal(y, x.numpy())
    np.testing.assert_allclose(tape.gradient(total, x), -0.5 * upstream)


def before_and_after_model(reverse):
    """x -> Dense "before" -> [GradientReversal] -> Dense "after", fixed initial weights."""
    inputs = keras.Input((3,))
    kernel = keras.initializers.Constant([[0.5], [-0.2], [0.3]])
    hidden = keras.layers.Dense(1, kernel_initializer=kernel, name="before")(inputs)
    if reverse:
        hidden = GradientReversal(name="reversal")(hidden)
    outputs = keras.layers.Dense(1, kernel_initializer="ones", name="after")(hidden)
    return keras.Model(inputs, outputs)


def test_weights_before_the_layer_move_the_other_way_in_fit(tmp_path):
    x = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]], "float32")
    y = np.array([[3.0], [-2.0]], "float32")
    updates = {}
    for reverse in (False, True):
        model = before_and_after_model(reverse)
        start = {name: model.get_layer(name).get_weights() for name in ("before", "after")}
        fit_one_step(model, x, y, loss="mse")
        updates[reverse] = {
            name: [
                new - old
                for new, old in zip(model.get_layer(name).get_weights(), start[name], strict=True)
            ]
            for name in start
        }
    # Same forward pass, so the layer after the reversal gets the same update; the
    # layer before it gets exactly the opposite one (scale 1, plain SGD).
    for plain, reversed_ in zip(updates[False]["after"], updates[True]["after"], strict=True):
        np.testing.assert_allclose(reversed_, plain, rtol=1e-6)
    for plain, reversed_ in zip(updates[False]["before"], updates[True]["before"], strict=True):
        assert np.all(np.abs(plain) > 1e-4)
        np.testing.assert_allclose(reversed_, -plain, rtol=1e-5)

    config_round_trip(model.get_layer("reversal"))
    save_and_reload(model, tmp_path, x)


def test_bad_scale():
    with pytest.raises(ValueError, match="Received: scale=-1"):
        GradientReversal(scale=-1)
