"""Softmax cross-entropy on person ids, with optional label smoothing."""

import keras
from keras import ops

from keras_reid.losses.base import ReIDLoss
from keras_reid.losses.distance import flatten_pids


@keras.saving.register_keras_serializable(package="keras_reid")
class SoftmaxCrossEntropy(ReIDLoss):
    """Identity classification loss: cross-entropy of logits against smoothed one-hot ids.

    With ``C`` classes and smoothing ``eps`` the target of an image with class
    ``y`` is ``(1 - eps) * onehot(y) + eps / C`` (Szegedy et al., "Rethinking the
    Inception Architecture", 2016, Sec. 7), and its loss is
    ``-sum_c target_c * log softmax(logits)_c``. ``keras.losses.SparseCategoricalCrossentropy``
    has no label smoothing in Keras 3, hence this class.

    ``y_true`` holds class indices 0..C-1: person ids relabelled to be
    contiguous, which the data pipeline and the model's classifier size take
    care of. An image with a negative label (-1, unlabelled target image) gets
    a loss of 0; note that the default ``"sum_over_batch_size"`` reduction still
    divides by the whole batch size.

    Args:
        label_smoothing: float in [0, 1). Defaults to 0.0 (plain cross-entropy).
        from_logits: whether ``y_pred`` holds logits (default, as produced by
            :class:`keras_reid.layers.ClassificationHead`) or probabilities.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> SoftmaxCrossEntropy(label_smoothing=0.1)([2, 0], logits)  # logits (2, C)
    """

    def __init__(
        self,
        label_smoothing=0.0,
        from_logits=True,
        name="softmax_cross_entropy",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "`label_smoothing` must be in [0, 1). "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        labels = flatten_pids(y_true)
        num_classes = y_pred.shape[-1]
        if self.from_logits:
            log_probs = ops.log_softmax(y_pred, axis=-1)
        else:
            # Clipped so that a probability of exactly 0 gives a large, finite loss.
            log_probs = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))
        one_hot = ops.one_hot(ops.maximum(labels, 0), num_classes, dtype=log_probs.dtype)
        targets = (1.0 - self.label_smoothing) * one_hot + self.label_smoothing / num_classes
        losses = -ops.sum(targets * log_probs, axis=-1)
        return ops.where(ops.greater_equal(labels, 0), losses, ops.zeros_like(losses))

    def get_config(self):
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "from_logits": self.from_logits,
        }
