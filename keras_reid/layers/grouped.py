"""A dense layer holding one weight set per group (camera, dataset): EmbAE's per-camera f_nui."""

import keras
import tensorflow as tf
from keras import ops

from keras_reid.checks import is_int


def _per_group(initializer, groups):
    """An initializer for a [groups, ...] weight that initialises each group's slice on its own.

    Keras' fan-in/fan-out initializers would read a [G, in, out] kernel as a
    convolution with a receptive field of G and shrink its scale by G; each
    group is an ordinary dense kernel and is initialised as one. A seeded Keras
    initializer repeats its draw on every call, so group g uses the seed + g:
    the groups start different, and reproducibly so.
    """
    seed = getattr(initializer, "seed", None)
    if isinstance(seed, int):
        config = initializer.get_config()
        initializers = [
            type(initializer).from_config({**config, "seed": seed + g}) for g in range(groups)
        ]
    else:
        initializers = [initializer] * groups

    def initialize(shape, dtype=None):
        return ops.stack([init(shape[1:], dtype=dtype) for init in initializers])

    return initialize


@keras.saving.register_keras_serializable(package="keras_reid")
class GroupedDense(keras.layers.Layer):
    """A Dense layer with a kernel and bias per group, chosen per sample by a group index.

    ``GroupedDense(units, groups)([x, group])[i] = activation(x[i] @ kernel[group[i]] +
    bias[group[i]])``. With ``groups=1`` it is a ``keras.layers.Dense``.

    EmbAE (Potapov et al.) holds the nuisance parameters θ_nui either
    once, once per dataset or once per camera of each dataset; this layer is
    all three in one serializable layer, the group being the sample's dataset
    or (dataset, camera) index, handed over beside its features.

    Cost: the batch is split by group (``tf.dynamic_partition``), each part
    multiplied by its own kernel, and the rows put back in their order
    (``tf.dynamic_stitch``), so a batch costs exactly the FLOPs of one Dense
    layer whatever the number of groups. The alternatives cost more: an einsum
    against every group's kernel does G times the work, and gathering a kernel
    per sample materialises a [B, in, out] tensor. Those two TensorFlow ops have
    no ``keras.ops`` equivalent, hence the TF-backend calls here (the package
    runs on the TF backend only). They have no static output shape, so the
    layer sets ``supports_jit = False`` when ``groups > 1``: Keras then does not
    XLA-compile a model holding it.

    Adding groups (new target cameras): build a layer with more groups and
    copy the old slices with :func:`copy_group_weights`.

    Args:
        units: output size, a positive integer.
        groups: number of weight sets, a positive integer. Default 1.
        activation: as for ``keras.layers.Dense``. Default None (linear).
        use_bias: add a bias per group. Default True.
        kernel_initializer: initializer of each group's [in, units] kernel.
            Default "glorot_uniform".
        bias_initializer: initializer of each group's bias. Default "zeros".
        kernel_regularizer, bias_regularizer: applied to the whole [G, ...]
            weights. Default None.
        **kwargs: as for ``keras.layers.Layer`` (name, dtype, ...).

    Inputs:
        ``[x, group]``: x float [B, in]; group int [B] or [B, 1], each in
        ``[0, groups)`` (out of range is an error naming the layer).

    Example:
        >>> layer = GroupedDense(4, groups=3)
        >>> y = layer([np.ones((2, 5), "float32"), np.array([0, 2])])  # [2, 4]
    """

    def __init__(
        self,
        units,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("units", units), ("groups", groups)):
            if not is_int(value, minimum=1, numpy=True):
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        self.units = int(units)
        self.groups = int(groups)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.supports_jit = self.groups == 1

    def build(self, input_shape):
        x_shape = input_shape[0]
        input_dim = x_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"{self.name}: the last axis of x must be known. Received: x shape {x_shape}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.groups, input_dim, self.units),
            initializer=_per_group(self.kernel_initializer, self.groups),
            regularizer=self.kernel_regularizer,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.groups, self.units),
                initializer=_per_group(self.bias_initializer, self.groups),
                regularizer=self.bias_regularizer,
            )

    def call(self, inputs):
        x, group = inputs
        kernel = ops.cast(self.kernel, x.dtype)
        bias = None if self.bias is None else ops.cast(self.bias, x.dtype)
        if self.groups == 1:
            # One weight set: a plain matmul, and the group index is not read.
            y = ops.matmul(x, kernel[0])
            if bias is not None:
                y = y + bias[0]
            return self.activation(y)
        group = tf.reshape(tf.cast(group, tf.int32), [-1])
        check = tf.debugging.assert_less(
            group,
            self.groups,
            message=f"{self.name}: a group index is >= groups={self.groups}",
        )
        check_low = tf.debugging.assert_non_negative(
            group, message=f"{self.name}: a group index is negative"
        )
        with tf.control_dependencies([check, check_low]):
            rows = tf.range(tf.shape(x)[0])
        parts = tf.dynamic_partition(x, group, self.groups)
        positions = tf.dynamic_partition(rows, group, self.groups)
        outputs = []
        for g in range(self.groups):
            y = tf.matmul(parts[g], kernel[g])
            if bias is not None:
                y = y + bias[g]
            outputs.append(y)
        y = tf.dynamic_stitch(positions, outputs)
        return self.activation(tf.ensure_shape(y, [None, self.units]))

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "groups": self.groups,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }


def copy_group_weights(source, target, groups=None):
    """Copy ``source``'s per-group weights into the first groups of ``target``.

    How a model gains groups (EmbAE fine-tuning adds a θ_nui for the target
    dataset or for each target camera): build the new layer with more groups,
    then copy the trained slices over; the extra groups keep their fresh
    initialisation.

    Args:
        source: a built :class:`GroupedDense`.
        target: a built :class:`GroupedDense` with the same input size, units
            and use_bias, and at least ``groups`` groups.
        groups: how many of the source's groups to copy, from group 0.
            Default None: all of them.

    Example:
        >>> wider = GroupedDense(old.units, groups=old.groups + 6)
        >>> wider.build([(None, 1024), (None,)])
        >>> copy_group_weights(old, wider)
    """
    groups = source.groups if groups is None else int(groups)
    if not 0 <= groups <= min(source.groups, target.groups):
        raise ValueError(
            f"cannot copy {groups} group(s) from {source.name} ({source.groups} groups) into "
            f"{target.name} ({target.groups} groups). Received: groups={groups}"
        )
    if source.kernel.shape[1:] != target.kernel.shape[1:] or source.use_bias != target.use_bias:
        raise ValueError(
            f"{source.name} and {target.name} differ in shape: kernels "
            f"{tuple(source.kernel.shape)} and {tuple(target.kernel.shape)}, use_bias "
            f"{source.use_bias} and {target.use_bias}."
        )
    pairs = [(source.kernel, target.kernel)]
    if source.use_bias:
        pairs.append((source.bias, target.bias))
    for old, new in pairs:
        values = ops.convert_to_numpy(new).copy()
        values[:groups] = ops.convert_to_numpy(old)[:groups]
        new.assign(values)
