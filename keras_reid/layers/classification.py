"""Identity classification head: person-id logits from an embedding."""

import keras

from keras_reid.checks import is_int


@keras.saving.register_keras_serializable(package="keras_reid")
class ClassificationHead(keras.layers.Layer):
    """Dense logits over the training identities, with optional dropout before them.

    Pair it with :class:`keras_reid.losses.SoftmaxCrossEntropy`; its labels are
    person ids relabelled to 0..num_classes-1.

    Args:
        num_classes: number of training identities, a positive int.
        dropout: dropout rate in [0, 1) applied to the embedding in training.
            Defaults to 0.0 (none).
        use_bias: whether the logits have a bias. Defaults to True.
        **kwargs: as for ``keras.layers.Layer``.

    Example:
        >>> logits = ClassificationHead(751, name="logits")(embedding)  # Market-1501
    """

    def __init__(self, num_classes, dropout=0.0, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if not is_int(num_classes, minimum=1):
            raise ValueError(
                f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}"
            )
        if isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.num_classes = num_classes
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.dense = keras.layers.Dense(
            num_classes, use_bias=self.use_bias, dtype=self.dtype_policy, name="logits"
        )

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs, training=None):
        return self.dense(self.dropout_layer(inputs, training=training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
        }
