"""The base of every keras_reid loss: a diverged model always gives a NaN loss."""

import keras
from keras import ops


class ReIDLoss(keras.losses.Loss):
    """A ``keras.losses.Loss`` whose value is NaN whenever ``y_pred`` holds a NaN or an infinity.

    Batch mining takes maxima and minima over distances, and how a maximum
    treats NaN depends on where it runs: eager TensorFlow propagates it,
    a traced graph or XLA (where ``model.fit`` runs) drops it. A diverged
    embedding then gave a plausible finite loss (ln 2 for the soft margin)
    and the NaN stop never fired. The check here does not depend on that.
    """

    def __call__(self, y_true, y_pred, sample_weight=None):
        value = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        finite = ops.all(ops.isfinite(ops.convert_to_tensor(y_pred)))
        return ops.where(finite, value, ops.full_like(value, float("nan")))
