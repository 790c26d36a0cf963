"""Callbacks of the papers' training beside the run state's: the gradient-reversal ramp."""

import math

import keras

from keras_reid.layers.gradient_reversal import reversal_layers


def ganin_ramp(progress, gamma=10.0):
    """``2 / (1 + exp(-gamma * progress)) - 1``: 0 at the start of training, near 1 at its end.

    The adaptation factor schedule of Ganin & Lempitsky, "Unsupervised Domain
    Adaptation by Backpropagation" (ICML 2015; gamma = 10 there), which
    keeps the domain classifier's reversed gradient from disturbing the
    features before they mean anything. ``progress`` runs from 0 to 1.

    Example:
        >>> round(ganin_ramp(0.5), 4)
        0.9866
    """
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class ReversalRamp(keras.callbacks.Callback):
    """Sets every :class:`GradientReversal` layer's factor to ``max_scale * ganin_ramp(p)``.

    ``p`` is the training progress, the optimizer's step count over the run's
    total steps, set before every batch; counted from the optimizer, a resumed
    run continues the ramp where it stopped. The DIEN paper keeps the factor
    constant (no callback); this is the schedule of the method it builds on.

    Args:
        max_scale: the factor reached at the end. Default 1.0.
        gamma: the ramp's steepness. Default 10 (Ganin & Lempitsky).
        total_steps: the run's steps; None (default): epochs x steps per epoch
            of the fit it is given to.

    Raises:
        ValueError: at the start of training, when the model has no
            GradientReversal layer (nothing to ramp: a domain classifier
            without reversal would make the features more domain-specific).
    """

    def __init__(self, max_scale=1.0, gamma=10.0, total_steps=None):
        super().__init__()
        self.max_scale, self.gamma, self.total_steps = float(max_scale), float(gamma), total_steps

    def on_train_begin(self, logs=None):
        self.layers = reversal_layers(self.model)
        if not self.layers:
            raise ValueError(
                f"ReversalRamp: model {self.model.name!r} has no GradientReversal layer to ramp; "
                "put one between the features and the domain classifier."
            )
        if self.total_steps is None:
            self.total_steps = self.params["epochs"] * self.params["steps"]

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        value = self.max_scale * ganin_ramp(min(1.0, step / self.total_steps), self.gamma)
        for layer in self.layers:
            layer.set_scale(value)
