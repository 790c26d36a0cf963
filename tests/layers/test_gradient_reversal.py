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


def test_the_factor_changes_between_calls_of_one_traced_function():
    layer = GradientReversal(scale=1.0)
    x = tf.Variable(np.ones((2, 3), "float32"))

    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(layer(x) * 2.0)
        return tape.gradient(total, x)

    np.testing.assert_allclose(gradient(), -2.0 * np.ones((2, 3)))
    layer.set_scale(0.25)
    np.testing.assert_allclose(gradient(), -0.5 * np.ones((2, 3)))  # not the traced 1.0
    assert gradient.experimental_get_tracing_count() == 1
    with pytest.raises(ValueError, match="Received: scale=-0.5"):
        layer.set_scale(-0.5)


class _Factors(keras.callbacks.Callback):
    """Sets the reversal factor before each batch from a list (as a ramp would)."""

    def __init__(self, factors):
        super().__init__()
        self.factors = factors

    def on_train_batch_begin(self, batch, logs=None):
        self.model.get_layer("reversal").set_scale(self.factors[batch])


def test_a_factor_set_by_a_callback_mid_training_takes_effect(tmp_path):
    x = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]], "float32")
    y = np.array([[3.0], [-2.0]], "float32")
    model = before_and_after_model(reverse=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = model.get_layer("before")
    start = [w.copy() for w in before.get_weights()]
    # Step 1 at factor 1 moves "before"; step 2 at factor 0 must leave it where step 1 left it.
    steps = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(steps, steps_per_epoch=1, epochs=1, verbose=0, callbacks=[_Factors([1.0])])
    after_one = [w.copy() for w in before.get_weights()]
    assert max(np.abs(a - b).max() for a, b in zip(after_one, start, strict=True)) > 1e-4
    model.fit(steps, steps_per_epoch=1, epochs=1, verbose=0, callbacks=[_Factors([0.0])])
    for got, want in zip(before.get_weights(), after_one, strict=True):
        np.testing.assert_array_equal(got, want)
    # The current factor is a weight: saved and restored with the model.
    model.get_layer("reversal").set_scale(0.3)
    reloaded = save_and_reload(model, tmp_path, x)
    assert float(reloaded.get_layer("reversal").factor.numpy()) == pytest.approx(0.3)
