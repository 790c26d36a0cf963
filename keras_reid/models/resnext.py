"""ResNeXt-50 (32x4d), the trunk we read as MSML's "Resnet50-X".

Xie et al. 2017, "Aggregated Residual Transformations for Deep Neural
Networks", Table 1: ResNet-50's layout (3, 4, 6, 3 bottleneck blocks) with
each block's 3x3 convolution split into cardinality 32 groups of width 4
(x2 per stage: 128, 256, 512, 1024 channels in the 3x3s; 256 ... 2048 out).
The MSML paper (Xiao et al. 2017, Sec. 4.2) names its third trunk
"Resnet50-Xception (Resnet50-X)" and, in Sec. 2.1, motivates it by group
and channel-wise convolutions in ResNet blocks; no such network is
specified, so we read it as ResNeXt-50 32x4d, the standard grouped-
convolution ResNet-50 (an issue #11 decision).

Written here with plain Keras layers (the grouped convolution is
``Conv2D(groups=32)``, as :class:`GroupedConv2D` so a CPU trains it
without XLA), in torchvision's layout: stride in the 3x3 convolution,
symmetric zero padding, no convolution biases.
"""

import keras

from keras_reid.environment import onednn_enabled
from keras_reid.models.backbones import (
    RESNET50_STAGES,
    TrunkParts,
    check_weights,
    load_weight_file,
    register_backbone,
    stage_plans,
)

BN_EPSILON = 1e-5  # torchvision's


@keras.saving.register_keras_serializable(package="keras_reid")
class GroupedConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with ``groups > 1``, minus Keras' forced XLA on a TF CPU.

    Keras 3.15's TensorFlow backend compiles every grouped convolution with
    XLA on a CPU, whose gradient is ~450x slower than TensorFlow's own grouped
    kernel (measured: 12.2 s vs 0.027 s for one 3x3 conv, 256 channels, 32
    groups, 16x32x32 batch), which makes ResNeXt untrainable on a CPU. Same
    configuration and weights as ``Conv2D(groups=...)``; other backends use
    Keras' own convolution.

    TensorFlow's grouped kernel has a CPU gradient only through oneDNN, which
    TensorFlow turns on by default on some processors and not on others (off
    on an AMD EPYC without AVX-512, where the gradient fails with "Gradients
    for grouped convolutions are not supported on CPU"). Without oneDNN the
    layer convolves each group on its own and concatenates the results: the
    same values and gradients, slower.

    Example:
        >>> conv = GroupedConv2D(128, 3, groups=32, padding="same", use_bias=False)
    """

    def convolution_op(self, inputs, kernel):
        if keras.backend.backend() != "tensorflow" or self.data_format != "channels_last":
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        options = {
            "strides": self.strides,
            "padding": self.padding.upper(),
            "dilations": self.dilation_rate,
        }
        if onednn_enabled() or tf.config.list_logical_devices("GPU"):
            return tf.nn.convolution(inputs, kernel, **options)
        parts = zip(
            tf.split(inputs, self.groups, axis=-1),
            tf.split(kernel, self.groups, axis=-1),
            strict=True,
        )
        return tf.concat([tf.nn.convolution(x, k, **options) for x, k in parts], axis=-1)


CARDINALITY = 32
BLOCKS = (3, 4, 6, 3)  # bottleneck blocks in stages 2..5


def _bn(x, name, relu=True):
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _block(x, name, width, out, stride, rate):
    """Bottleneck: 1x1 -> grouped 3x3 (stride, rate) -> 1x1, plus the shortcut."""
    shortcut = x
    if stride != 1 or x.shape[-1] != out:
        shortcut = keras.layers.Conv2D(
            out, 1, strides=stride, use_bias=False, name=f"{name}_0_conv"
        )(x)
        shortcut = _bn(shortcut, f"{name}_0", relu=False)
    y = keras.layers.Conv2D(width, 1, use_bias=False, name=f"{name}_1_conv")(x)
    y = _bn(y, f"{name}_1")
    y = keras.layers.ZeroPadding2D(rate, name=f"{name}_2_pad")(y)
    y = GroupedConv2D(
        width,
        3,
        strides=stride,
        dilation_rate=rate,
        groups=CARDINALITY,
        use_bias=False,
        name=f"{name}_2_conv",
    )(y)
    y = _bn(y, f"{name}_2")
    y = keras.layers.Conv2D(out, 1, use_bias=False, name=f"{name}_3_conv")(y)
    y = _bn(y, f"{name}_3", relu=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


@register_backbone("resnext50")
def resnext50(input_shape=(224, 224, 3), weights=None, last_stride=2, dilation=1):
    """ResNeXt-50 32x4d (Xie et al. 2017), 2048 channels at stride 32.

    Stages (last layer, as Keras' ResNet50): stage1 conv1_relu, stage2
    conv2_block3_out, stage3 conv3_block4_out, stage4 conv4_block6_out, stage5
    conv5_block3_out. The first block of stages 3-5 downsamples in its grouped
    3x3 convolution (and 1x1 shortcut); ``last_stride`` sets that stride in
    conv5_block1. Stages 3-5 can be dilated: a dilated stage runs at stride 1,
    its first block's grouped 3x3 with the previous stage's rate and the other
    blocks' with the stage's rate (torchvision's ``replace_stride_with_dilation``).

    Args:
        input_shape: (height, width, 3); 224x224 in MSML, at least 32x32.
        weights: None or the path of a weight file for this architecture, a
            Keras ``.h5`` (layers in this model's order) or ``.weights.h5``;
            inputs are BGR minus the ImageNet mean ("caffe" preprocessing), so
            converted torchvision weights must fold its input scaling into
            conv1. "imagenet" is refused: no download.
        last_stride: 1 or 2. Default 2.
        dilation: int or tuple, see :mod:`keras_reid.models.backbones`. Default 1.

    Example:
        >>> trunk = build_backbone("resnext50", (64, 32, 3), last_stride=1)
        >>> trunk.output.shape
        (None, 4, 2, 2048)
    """
    path = check_weights(weights, name="resnext50")
    plans = stage_plans("resnext50", 5, last_stride, dilation, dilatable=3)
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = keras.layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = _bn(x, "conv1")
    # Zero padding equals torchvision's -inf padding here: inputs are >= 0 after ReLU.
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, blocks in enumerate(BLOCKS, start=2):
        plan = plans[stage - 1]
        width = CARDINALITY * 4 * 2 ** (stage - 2)
        for block in range(1, blocks + 1):
            first = block == 1 and stage > 2
            x = _block(
                x,
                f"conv{stage}_block{block}",
                width,
                width * 2,
                plan.stride if first else 1,
                plan.entry_rate if first else plan.rate,
            )
    net = keras.Model(inputs, x, name="resnext50")
    load_weight_file(net, "resnext50", path)
    return TrunkParts(net, "caffe", RESNET50_STAGES)
