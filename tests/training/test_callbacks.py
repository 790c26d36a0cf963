"""The gradient-reversal ramp (Ganin & Lempitsky's schedule) as a training callback."""

import math

import keras
import numpy as np
import pytest

from keras_reid.layers import GradientReversal
from keras_reid.training.callbacks import ReversalRamp, ganin_ramp


def test_ganin_ramp_values():
    # 2 / (1 + e^(-10 p)) - 1 by hand: p = 0, 0.1, 0.5, 1.
    assert ganin_ramp(0.0) == 0.0
    assert ganin_ramp(0.1) == pytest.approx(2 / (1 + math.e**-1) - 1)  # 0.4621
    assert ganin_ramp(0.5) == pytest.approx(0.986614, abs=1e-6)
    assert ganin_ramp(1.0) == pytest.approx(0.999909, abs=1e-6)


def reversal_model():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(2, name="features")(inputs)
    reversed_ = GradientReversal(scale=0.0, name="reversal")(hidden)
    return keras.Model(inputs, keras.layers.Dense(1, name="domain")(reversed_))


class _Record(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.seen = getattr(self, "seen", []) + [
            float(self.model.get_layer("reversal").factor.numpy())
        ]


def test_the_ramp_sets_the_factor_before_every_step_from_the_optimizer_step():
    model = reversal_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")
    record = _Record()
    # 2 epochs x 2 steps: the factor of step s (0-based) is 0.5 * ramp(s / 4).
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[ReversalRamp(0.5), record])
    np.testing.assert_allclose(record.seen, [0.5 * ganin_ramp(s / 4) for s in range(4)], 1e-6)
    # A second fit (a resumed run) continues from the optimizer's step, not from 0.
    record.seen = []
    model.fit(
        x,
        y,
        batch_size=2,
        epochs=1,
        verbose=0,
        callbacks=[ReversalRamp(0.5, total_steps=8), record],
    )
    np.testing.assert_allclose(record.seen, [0.5 * ganin_ramp(s / 8) for s in (4, 5)], 1e-6)


def test_a_model_without_reversal_is_refused():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs), name="no_grl")
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="model 'no_grl' has no GradientReversal layer"):
        model.fit(np.ones((2, 3)), np.ones((2, 1)), verbose=0, callbacks=[ReversalRamp()])
