"""Gradient reversal: the identity going forward, a negated gradient going back."""

import keras
from keras import ops

from keras_reid.losses.distance import check_non_negative


@keras.saving.register_keras_serializable(package="keras_reid")
class GradientReversal(keras.layers.Layer):
    """Identity in the forward pass; multiplies the gradient by ``-scale`` backwards.

    Placed between a feature extractor and a domain (or nuisance) classifier,
    it lets the classifier minimise its loss while the features below are
    trained to maximise it, i.e. to become invariant to what the classifier
    predicts. From Ganin & Lempitsky, "Unsupervised Domain Adaptation by
    Backpropagation" (ICML 2015), where ``scale`` is their lambda.

    Args:
        scale: non-negative float, the factor lambda of the reversed gradient.
            Defaults to 1.0.
        **kwargs: as for ``keras.layers.Layer`` (name, dtype, ...).

    Example:
        >>> z = GradientReversal(scale=0.1)(features)
        >>> domain_logits = keras.layers.Dense(2)(z)
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = check_non_negative("scale", scale)

    def call(self, inputs):
        scale = self.scale

        @ops.custom_gradient
        def reverse(x):
            # The TensorFlow backend passes the upstream gradient positionally, others
            # as `upstream=`: this signature takes both (see keras.ops.custom_gradient).
            def grad(*args, upstream=None):
                if upstream is None:
                    (upstream,) = args
                return ops.multiply(upstream, -scale)

            return ops.copy(x), grad

        return reverse(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
