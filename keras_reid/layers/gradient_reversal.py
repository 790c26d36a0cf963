"""Gradient reversal: the identity going forward, a negated gradient going back."""

import keras
from keras import ops

from keras_reid.checks import check_non_negative


@keras.saving.register_keras_serializable(package="keras_reid")
class GradientReversal(keras.layers.Layer):
    """Identity in the forward pass; multiplies the gradient by ``-scale`` backwards.

    Placed between a feature extractor and a domain (or nuisance) classifier,
    it lets the classifier minimise its loss while the features below are
    trained to maximise it, i.e. to become invariant to what the classifier
    predicts. From Ganin & Lempitsky, "Unsupervised Domain Adaptation by
    Backpropagation" (ICML 2015), where ``scale`` is their lambda.

    The factor is a (non-trainable) variable of the layer, read at every
    step, so it can change during training without retracing: assign it with
    :meth:`set_scale` (e.g. from :class:`keras_reid.training.callbacks.ReversalRamp`,
    Ganin's schedule). It is saved with the weights; ``scale`` in the config is
    the initial value.

    Args:
        scale: non-negative float, the initial factor lambda of the reversed
            gradient. Defaults to 1.0.
        **kwargs: as for ``keras.layers.Layer`` (name, dtype, ...).

    Example:
        >>> z = GradientReversal(scale=0.1)(features)
        >>> domain_logits = keras.layers.Dense(2)(z)
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = check_non_negative("scale", scale)
        self.factor = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.scale),
            trainable=False,
            dtype="float32",
            name="scale",
        )

    def set_scale(self, value):
        """Set the factor of the reversed gradient from now on (a non-negative float)."""
        self.factor.assign(check_non_negative("scale", value))

    def call(self, inputs):
        factor = self.factor

        @ops.custom_gradient
        def reverse(x):
            # The TensorFlow backend passes the upstream gradient positionally, others
            # as `upstream=`: this signature takes both (see keras.ops.custom_gradient).
            def grad(*args, upstream=None):
                if upstream is None:
                    (upstream,) = args
                return ops.multiply(upstream, -ops.cast(factor, upstream.dtype))

            return ops.copy(x), grad

        return reverse(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def reversal_layers(model):
    """Every :class:`GradientReversal` layer of ``model``, nested models included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, GradientReversal)
    ]
