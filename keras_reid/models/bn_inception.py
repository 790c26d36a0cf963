"""BN-Inception (Inception-v2): GoogLeNet with batch normalisation, one of the MSML trunks.

Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network
Training by Reducing Internal Covariate Shift", Sec. 4.2 and Fig. 5: the
GoogLeNet layout with BN after every convolution, each 5x5 convolution
replaced by two 3x3 ones, average pooling in most blocks and stride-2
"reduction" blocks (3c, 4e) that concatenate a max-pooled pass-through. The
filter counts are those of the released Caffe model (used by TSN and most
re-ID code), which follows the paper's table. Keras "same" padding replaces
Caffe's symmetric padding and ceil-mode pooling: map sizes agree, pixels at
odd borders may not. MSML (Xiao et al. 2017) calls it Inception-v2.

Not in keras.applications, nor in keras-hub: written here with plain Keras
layers, so a ``.keras`` file needs no custom objects.
"""

import keras

from keras_reid.models.backbones import (
    TrunkParts,
    check_weights,
    load_weight_file,
    register_backbone,
    stage_plans,
)

BN_EPSILON = 1e-5  # as in the Caffe model

# name: (1x1, (3x3 reduce, 3x3), (double reduce, double 3x3), pool, pool projection)
# A block with 1x1 = 0 is a reduction block: stride 2, max-pool pass-through.
BLOCKS = {
    "3a": (64, (64, 64), (64, 96), "avg", 32),
    "3b": (64, (64, 96), (64, 96), "avg", 64),
    "3c": (0, (128, 160), (64, 96), "max", 0),
    "4a": (224, (64, 96), (96, 128), "avg", 128),
    "4b": (192, (96, 128), (96, 128), "avg", 128),
    "4c": (128, (128, 160), (128, 160), "avg", 128),
    "4d": (96, (128, 192), (160, 192), "avg", 128),
    "4e": (0, (128, 192), (192, 256), "max", 0),
    "5a": (352, (192, 320), (160, 224), "avg", 128),
    "5b": (352, (192, 320), (192, 224), "max", 128),
}
STAGE_BLOCKS = {3: ("3a", "3b"), 4: ("3c", "4a", "4b", "4c", "4d"), 5: ("4e", "5a", "5b")}


def _conv_bn(x, filters, kernel, name, stride=1, rate=1):
    """Conv (no bias: BN's beta replaces it) -> BN -> ReLU."""
    x = keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        dilation_rate=rate,
        use_bias=False,
        name=name,
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _inception(x, name, plan):
    """One Inception block; ``plan`` is its stage's :class:`StagePlan`."""
    ones, (reduce3, out3), (reduce_double, out_double), pool, projection = BLOCKS[name]
    prefix = f"inception_{name}"
    reduction = ones == 0
    # A reduction block downsamples in its last 3x3s, so the rate before it
    # applies there (and to the double branch's first 3x3, still before it).
    stride = plan.stride if reduction else 1
    rate_out = plan.entry_rate if reduction else plan.rate
    branches = []
    if not reduction:
        branches.append(_conv_bn(x, ones, 1, f"{prefix}_1x1"))
    y = _conv_bn(x, reduce3, 1, f"{prefix}_3x3_reduce")
    branches.append(_conv_bn(y, out3, 3, f"{prefix}_3x3", stride, rate_out))
    y = _conv_bn(x, reduce_double, 1, f"{prefix}_double_3x3_reduce")
    y = _conv_bn(y, out_double, 3, f"{prefix}_double_3x3_1", 1, rate_out)
    branches.append(_conv_bn(y, out_double, 3, f"{prefix}_double_3x3_2", stride, rate_out))
    pooling = keras.layers.MaxPooling2D if pool == "max" else keras.layers.AveragePooling2D
    y = pooling(3, strides=stride, padding="same", name=f"{prefix}_pool")(x)
    if projection:
        y = _conv_bn(y, projection, 1, f"{prefix}_pool_proj")
    branches.append(y)
    return keras.layers.Concatenate(name=f"{prefix}_output")(branches)


@register_backbone("bn_inception")
def bn_inception(input_shape=(224, 224, 3), weights=None, last_stride=2, dilation=1):
    """BN-Inception (Inception-v2; Ioffe & Szegedy 2015), 1024 channels at stride 32.

    Stages (last layer): stage1 conv1_7x7_s2_relu, stage2 conv2_3x3_relu,
    stage3 inception_3b_output, stage4 inception_4d_output (576 -> 608
    channels), stage5 inception_5b_output (1024). Stage4 begins with the
    reduction block 3c and stage5 with 4e; ``last_stride`` sets 4e's stride.
    Stages 4 and 5 can be dilated: the dilated stage's reduction block runs at
    stride 1, its 3x3 convolutions with the previous stage's rate, and the
    other blocks' 3x3 convolutions with the stage's rate (pooling is not dilated).

    Args:
        input_shape: (height, width, 3); 224x224 in MSML, at least 32x32.
        weights: None or the path of a weight file for this architecture, a
            Keras ``.h5`` (layers in this model's order) or ``.weights.h5``;
            inputs are BGR minus the ImageNet mean ("caffe" preprocessing),
            as the Caffe model expects. "imagenet" is refused: no download.
        last_stride: 1 or 2. Default 2.
        dilation: int or tuple, see :mod:`keras_reid.models.backbones`. Default 1.

    Example:
        >>> trunk = build_backbone("bn_inception", (64, 32, 3))
        >>> trunk.output.shape
        (None, 2, 1, 1024)
    """
    path = check_weights(weights, name="bn_inception")
    plans = stage_plans("bn_inception", 5, last_stride, dilation, dilatable=2)
    inputs = keras.Input(shape=input_shape)
    x = _conv_bn(inputs, 64, 7, "conv1_7x7_s2", stride=2)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_3x3_s2")(x)
    x = _conv_bn(x, 64, 1, "conv2_3x3_reduce")
    x = _conv_bn(x, 192, 3, "conv2_3x3")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool2_3x3_s2")(x)
    for stage, names in STAGE_BLOCKS.items():
        for name in names:
            x = _inception(x, name, plans[stage - 1])
    net = keras.Model(inputs, x, name="bn_inception")
    load_weight_file(net, "bn_inception", path)
    stages = {
        "stage1": "conv1_7x7_s2_relu",
        "stage2": "conv2_3x3_relu",
        "stage3": "inception_3b_output",
        "stage4": "inception_4d_output",
        "stage5": "inception_5b_output",
    }
    return TrunkParts(net, "caffe", stages)
