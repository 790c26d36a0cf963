"""Softmax cross-entropy on class labels, with optional label smoothing."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_reid.errors import ReIDError
from keras_reid.losses.base import ReIDLoss
from keras_reid.losses.distance import flatten_pids

_FIX = (
    "map person ids to class indices 0..C-1 with keras_reid.data.ClassMap "
    "(-1 marks an unlabelled row)"
)

# The reductions Keras divides by the batch size; for them labelled rows are
# weighted B / n_labelled, as Keras itself weights the rows a mask keeps.
_BATCH_MEANS = ("sum_over_batch_size", "mean")


def _out_of_range(labels, num_classes):
    """The (B,) mask of labels outside [-1, C), refused where an error can be raised.

    Eagerly: a ReIDError. In a graph: a ``tf.debugging.Assert`` the result
    depends on, so ``model.fit`` stops with an InvalidArgumentError naming the
    first such label and C. XLA drops Assert ops (TensorFlow logs "Ignoring
    Assert operator"), so there the mask is all the caller gets: it makes the
    loss NaN.
    """
    bad = ops.logical_or(ops.less(labels, -1), ops.greater_equal(labels, num_classes))
    if tf.executing_eagerly():
        rows = np.flatnonzero(np.asarray(bad))
        if rows.size:
            label = int(np.asarray(labels)[rows[0]])
            raise ReIDError(
                f"SoftmaxCrossEntropy: label {label} is outside [-1, C) with C={int(num_classes)} "
                f"classes ({rows.size} of {len(np.asarray(labels))} row(s)); {_FIX}. "
                f"Received: label={label}, C={int(num_classes)}"
            )
        return bad
    first = tf.gather(labels, tf.argmax(tf.cast(bad, tf.int32)))
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        [
            "SoftmaxCrossEntropy: a class label outside [-1, C) with C=",
            num_classes,
            "; first such label:",
            first,
            f"; {_FIX}",
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(bad)


@keras.saving.register_keras_serializable(package="keras_reid")
class SoftmaxCrossEntropy(ReIDLoss):
    """Identity classification loss: cross-entropy of logits against smoothed one-hot labels.

    With ``C`` classes and smoothing ``eps`` the target of an image with class
    ``y`` is ``(1 - eps) * onehot(y) + eps / C`` (Szegedy et al., "Rethinking the
    Inception Architecture", 2016, Sec. 7), and its loss is
    ``-sum_c target_c * log softmax(logits)_c``. ``keras.losses.SparseCategoricalCrossentropy``
    has no label smoothing in Keras 3, hence this class.

    ``y_true`` holds class indices 0..C-1 (person ids mapped by
    :class:`keras_reid.data.ClassMap`; ``C`` is the last axis of the logits),
    or -1 for an unlabelled row (a target-domain image), which is ignored: the
    loss is averaged over the labelled rows only (``"sum_over_batch_size"`` and
    ``"mean"`` divide by their number, ``"mean_with_sample_weight"`` by their
    weights), and a batch without a labelled row gives 0.

    A label outside [-1, C) is an error (raw person ids used as labels once
    gave a silent loss of 0): eagerly a ReIDError, in a graph (``model.fit``) an
    ``InvalidArgumentError`` naming the first such label and C. Under XLA
    (``jit_compile=True``), which drops assertions, the loss is NaN instead, so
    the run's NaN stop ends it.

    Args:
        label_smoothing: float in [0, 1). Defaults to 0.0 (plain cross-entropy).
        from_logits: whether ``y_pred`` holds logits (default, as produced by
            :class:`keras_reid.layers.ClassificationHead`) or probabilities.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> logits = np.array([[0.0, np.log(3.0)], [0.0, 0.0]])
        >>> SoftmaxCrossEntropy()([0, -1], logits)  # ln 4: the unlabelled row is left out
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

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        labels = flatten_pids(ops.convert_to_tensor(y_true))
        bad = _out_of_range(labels, y_pred.shape[-1])
        # Unlabelled rows get weight 0, passed to Keras' reduction as a sample
        # weight so that every reduction (and tf.distribute's scaling) applies.
        weights = ops.cast(ops.greater_equal(labels, 0), self.dtype)
        if self.reduction in _BATCH_MEANS:
            batch = ops.cast(ops.shape(labels)[0], self.dtype)
            weights = weights * ops.divide_no_nan(batch, ops.sum(weights))
        if sample_weight is not None:
            sample_weight = ops.reshape(ops.cast(sample_weight, self.dtype), (-1,))
            weights = weights * sample_weight
        value = super().__call__(y_true, y_pred, sample_weight=weights)
        return ops.where(ops.any(bad), ops.full_like(value, float("nan")), value)

    def call(self, y_true, y_pred):
        labels = flatten_pids(y_true)
        num_classes = y_pred.shape[-1]
        if self.from_logits:
            log_probs = ops.log_softmax(y_pred, axis=-1)
        else:
            # Clipped so that a probability of exactly 0 gives a large, finite loss.
            log_probs = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))
        one_hot = ops.one_hot(ops.clip(labels, 0, num_classes - 1), num_classes, log_probs.dtype)
        targets = (1.0 - self.label_smoothing) * one_hot + self.label_smoothing / num_classes
        losses = -ops.sum(targets * log_probs, axis=-1)
        return ops.where(ops.greater_equal(labels, 0), losses, ops.zeros_like(losses))

    def get_config(self):
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "from_logits": self.from_logits,
        }
