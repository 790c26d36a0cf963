"""DIEN's recurrent top-down attention: a mask predicted from the embedding, and the loop fusion."""

import keras
from keras import ops

from keras_reid.checks import is_int


def _up_factors(size):
    """``(first, second, third)``: the first deconvolution's output size, then two strides.

    The spatial branch grows a 1x1 map to ``size`` with three transposed
    convolutions: the first (kernel = its output size, "valid") to
    ``size / (s2 * s3)``, then two of stride ``s2``, ``s3`` in {1, 2}: 2 while
    the size still halves evenly.
    """
    second = 2 if size % 2 == 0 else 1
    third = 2 if (size // second) % 2 == 0 else 1
    return size // (second * third), second, third


def _check_positive_ints(name, values):
    if (
        not isinstance(values, (list, tuple))
        or not values
        or any(not is_int(v, minimum=1) for v in values)
    ):
        raise ValueError(f"`{name}` must be a list of positive ints. Received: {name}={values!r}")
    return tuple(values)


@keras.saving.register_keras_serializable(package="keras_reid")
class TopDownAttention(keras.layers.Layer):
    """One loop of DIEN's recurrent top-down attention (RTDA): re-weight a feature map.

    Inputs ``[feature_map (B, H, W, C), embedding (B, D)]``. From the
    embedding of the previous loop (the "glimpse") it predicts

    - a spatial map ``(B, H, W, 1)``: three transposed convolutions from the
      embedding as a 1x1 map (ReLU between them) and a sigmoid, as the paper's
      "three deconvolutional layers followed by a sigmoid layer";
    - channel weights ``(B, 1, 1, C)``: two 1x1 convolutions (ReLU between,
      ``C / reduction`` units in the middle, as in CBAM's channel attention)
      and a sigmoid, the paper's "two convolutional layers and a sigmoid layer";

    and combines them by their Kronecker (outer) product into a mask of the
    feature map's shape, ``mask[b, h, w, c] = spatial[b, h, w] * channel[b, c]``;
    the output is ``feature_map * mask``.

    Pu et al., "Learning a Domain-Invariant Embedding for Unsupervised Person
    Re-identification" (IJCNN 2019), Sec. III-D. What the paper leaves open and
    how it is read here (see also :func:`keras_reid.models.dien.build_dien_model`):
    the map re-weighted is the trunk's last feature map (the one the embedding
    is pooled from), so a loop re-pools a re-weighted map rather than re-running
    the trunk; one layer serves every loop (the loops share its weights, a
    recurrence in the strict sense); the spatial branch's sizes follow the
    map's: the first deconvolution grows 1x1 to ``H/4 x W/4`` (kernel of that
    size), the next two double it (stride 1 on an axis that does not halve).

    Args:
        filters: the two hidden widths of the spatial branch. Default (256, 64).
        reduction: the channel branch's squeeze ratio. Default 16.
        **kwargs: as for ``keras.layers.Layer``.

    Example:
        >>> attend = TopDownAttention()
        >>> attend([maps, die]).shape  # maps: (B, 8, 4, 2048), die: (B, 2048)
        (B, 8, 4, 2048)
    """

    def __init__(self, filters=(256, 64), reduction=16, **kwargs):
        super().__init__(**kwargs)
        self.filters = _check_positive_ints("filters", filters)
        if len(self.filters) != 2:
            raise ValueError(f"`filters` must give two widths. Received: filters={filters!r}")
        if not is_int(reduction, minimum=1):
            raise ValueError(f"`reduction` must be a positive int. Received: {reduction!r}")
        self.reduction = reduction

    def build(self, input_shape):
        map_shape, _ = input_shape
        height, width, channels = map_shape[1:]
        (h0, h2, h3), (w0, w2, w3) = _up_factors(height), _up_factors(width)
        first, second = self.filters
        policy = self.dtype_policy
        self.spatial_layers = [
            keras.layers.Conv2DTranspose(
                first, (h0, w0), activation="relu", dtype=policy, name="spatial_deconv1"
            ),
            keras.layers.Conv2DTranspose(
                second,
                3,
                (h2, w2),
                "same",
                activation="relu",
                dtype=policy,
                name="spatial_deconv2",
            ),
            keras.layers.Conv2DTranspose(
                1,
                3,
                (h3, w3),
                "same",
                activation="sigmoid",
                dtype=policy,
                name="spatial_deconv3",
            ),
        ]
        self.channel_layers = [
            keras.layers.Conv2D(
                max(1, channels // self.reduction),
                1,
                activation="relu",
                dtype=policy,
                name="channel_conv1",
            ),
            keras.layers.Conv2D(
                channels, 1, activation="sigmoid", dtype=policy, name="channel_conv2"
            ),
        ]
        units = input_shape[1][-1]
        for layers in (self.spatial_layers, self.channel_layers):
            shape = (None, 1, 1, units)
            for layer in layers:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)

    def attention_mask(self, inputs):
        """The mask ``(B, H, W, C)`` the feature map is multiplied by."""
        feature_map, embedding = inputs
        if not self.built:  # called directly, before the layer
            self.build([tuple(feature_map.shape), tuple(embedding.shape)])
        glimpse = ops.reshape(embedding, (-1, 1, 1, ops.shape(embedding)[-1]))
        spatial, channel = glimpse, glimpse
        for layer in self.spatial_layers:
            spatial = layer(spatial)
        for layer in self.channel_layers:
            channel = layer(channel)
        return ops.cast(spatial * channel, feature_map.dtype)  # (B,H,W,1) x (B,1,1,C)

    def call(self, inputs):
        return inputs[0] * self.attention_mask(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "filters": list(self.filters), "reduction": self.reduction}


@keras.saving.register_keras_serializable(package="keras_reid")
class LoopFusion(keras.layers.Layer):
    """The learned weighted sum of RTDA's ``T + 1`` embeddings, each weight initialised to 1/(T+1).

    The paper fuses the DIE of every loop (loop 0 the plain glimpse) "by a
    weighted sum where the weights are learned by an 1x1 convolution and are
    initialized to 1/(T+1)": a 1x1 convolution over the T+1 embeddings stacked
    as channels, one output channel, no bias, is exactly ``sum_t w_t * e_t``.

    Inputs: a list of ``T + 1`` tensors of one shape ``(B, D)``; output ``(B, D)``.
    ``kernel`` holds the ``T + 1`` weights (the paper's Fig. 3 a-b plots them).

    Example:
        >>> LoopFusion()([e0, e1, e2, e3])  # (e0 + e1 + e2 + e3) / 4 before training
    """

    def build(self, input_shape):
        count = len(input_shape)
        self.kernel = self.add_weight(
            shape=(count,),
            initializer=keras.initializers.Constant(1.0 / count),
            name="kernel",
        )

    def call(self, inputs):
        stacked = ops.stack(inputs, axis=-1)  # (B, D, T+1)
        return ops.sum(stacked * ops.cast(self.kernel, stacked.dtype), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]
