"""Trunks: ImageNet CNNs without their classifier, taking raw RGB in [0, 255].

A trunk is a functional ``keras.Model`` named "trunk": the input
normalisation, then the convolutional network as one nested model. By
default it maps images to the last feature map; heads pool and project it.
With ``stages=(...)`` it maps images to a dict of named stage outputs.

Stages are named by resolution: ``"stage<k>"`` is the last feature map at
stride 2**k (ResNet's conv1, conv2_x, ..., conv5_x are stage1..stage5), so
the ImageNet trunks have stage1..stage5 and ``small_convnet`` one stage per
width. The last stage is the default feature map.

Every trunk takes ``last_stride`` (1 or 2): the stride of its last stage.
1 doubles the height and width of the last map, the usual re-ID setting
(Sun et al. 2018, PCB; Luo et al. 2019, "Bag of tricks").

The ImageNet trunks also take ``dilation``, for multi-level features at one
resolution (self-attention learning, SAL Sec. 3.1; DeepLab, Chen et al.
2017): an int d for the last stage, or a tuple of rates for the last
len(tuple) stages, non-decreasing (SAL's ResNet50: ``dilation=(2, 4)`` for
stage4 and stage5). A stage with rate d > 1 does not downsample (its stride
becomes 1, so a dilated last stage needs ``last_stride=1``) and its spatial
convolutions use dilation rate d, which keeps every later 3x3 kernel's
receptive field as in the undilated network when d doubles per stage. Which
convolutions each trunk dilates is in its docstring.

Weights are ``None`` (random), ``"imagenet"`` (the Keras applications only:
downloads, where the internet is reachable) or the path of a local no-top
weight file.
"""

import os
from typing import NamedTuple

import keras

from keras_reid.checks import is_int
from keras_reid.errors import ReIDError
from keras_reid.layers.preprocessing import TrunkPreprocessing
from keras_reid.registry import Registry

BACKBONES = Registry("backbone")


class TrunkParts(NamedTuple):
    """What a registered backbone builder returns; :func:`build_backbone` assembles the trunk.

    Attributes:
        net: the convolutional network on normalised images (a functional model).
        preprocessing: the :class:`TrunkPreprocessing` mode its inputs need.
        stages: stage name -> name of the layer of ``net`` giving it, in order;
            the last one is ``net``'s output.
    """

    net: keras.Model
    preprocessing: str
    stages: dict


class StagePlan(NamedTuple):
    """How one stage runs: its stride, the dilation rate of its spatial convolutions,
    and the rate of the convolution that used to downsample (the rate in force
    before the stage, as torchvision's ``replace_stride_with_dilation``)."""

    stride: int
    rate: int
    entry_rate: int


# The last layer of each stage of a 50-layer ResNet (conv1, conv2_x .. conv5_x),
# in Keras' layer names; ResNeXt-50 keeps the same names.
RESNET50_STAGES = {
    "stage1": "conv1_relu",
    "stage2": "conv2_block3_out",
    "stage3": "conv3_block4_out",
    "stage4": "conv4_block6_out",
    "stage5": "conv5_block3_out",
}


def register_backbone(name):
    """Decorator registering ``fn(input_shape, weights, last_stride, dilation, **options)``.

    The builder returns :class:`TrunkParts`; it refuses options it cannot
    honour with a one-line :class:`ReIDError`.
    """
    return BACKBONES.register(name)


def stage_plans(name, num_stages, last_stride, dilation, dilatable):
    """One :class:`StagePlan` per stage (index 0 = stage1), all stages stride 2 by default.

    ``dilatable`` is how many of the last stages may be dilated (0: none).
    """
    if last_stride not in (1, 2) or isinstance(last_stride, bool):
        raise ReIDError(
            f"{name}: last_stride must be 1 or 2. Received: last_stride={last_stride!r}"
        )
    rates = (dilation,) if is_int(dilation) else dilation
    if (
        not isinstance(rates, (tuple, list))
        or not rates
        or any(not is_int(r, minimum=1) for r in rates)
        or list(rates) != sorted(rates)
    ):
        raise ReIDError(
            f"{name}: dilation must be an int >= 1 or a non-decreasing tuple of them. "
            f"Received: dilation={dilation!r}"
        )
    rates = list(rates)
    while len(rates) > 1 and rates[0] == 1:
        rates.pop(0)
    if rates != [1] and len(rates) > dilatable:
        what = (
            "does not support dilation"
            if dilatable == 0
            else f"can dilate at most its last {dilatable} stage(s)"
        )
        raise ReIDError(f"{name}: this trunk {what}. Received: dilation={dilation!r}")
    if rates[-1] > 1 and last_stride != 1:
        raise ReIDError(
            f"{name}: a dilated last stage does not downsample; pass last_stride=1 with it. "
            f"Received: last_stride={last_stride}, dilation={dilation!r}"
        )
    full = [1] * (num_stages - len(rates)) + rates
    plans = []
    for index, rate in enumerate(full):
        stride = 1 if rate > 1 else (last_stride if index == num_stages - 1 else 2)
        plans.append(StagePlan(stride, rate, full[index - 1] if index else 1))
    return plans


def check_weights(weights, name=None):
    """``weights`` as given (None, "imagenet") or as an absolute path that exists.

    With ``name`` (a trunk without a download source), "imagenet" is refused.
    """
    if weights is None:
        return None
    if weights == "imagenet":
        if name is not None:
            raise ReIDError(
                f"{name}: no ImageNet download for this trunk; pass the path of a weight file "
                "made for it (see its docstring). Received: weights='imagenet'"
            )
        return weights
    path = os.path.abspath(os.path.expanduser(str(weights)))
    if not os.path.isfile(path):
        raise ReIDError(
            f"weights file {path} does not exist; pass weights=None, 'imagenet' or the "
            "path of a no-top .h5 file."
        )
    return path


def load_weight_file(net, name, path):
    """Load a Keras .h5 (layer order) or .weights.h5 file into ``net``; one-line errors."""
    if path is None:
        return net
    try:
        net.load_weights(path)
    except (ValueError, OSError, KeyError, TypeError) as error:
        raise ReIDError(
            f"{name}: cannot load weights {path} into this trunk: "
            f"{str(error).strip().splitlines()[0]}; check the file matches the backbone."
        ) from None
    return net


def _options_text(options):
    return ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"


def _application(application, name, input_shape, weights, edits=None, **options):
    """A Keras application's conv trunk, its layer configs changed by ``edits``.

    ``edits`` maps layer name -> config entries to replace (strides, dilation,
    padding); the weights (loaded by the application itself, in its layer
    order) are copied over, since none of these entries changes a weight shape.
    """
    try:
        net = application(include_top=False, weights=weights, input_shape=input_shape, **options)
    except (ValueError, OSError) as error:
        if weights is None:
            raise
        raise ReIDError(
            f"{name}: cannot load weights {weights} into this trunk ({_options_text(options)}): "
            f"{str(error).splitlines()[0]}; check the file matches the backbone."
        ) from None
    if not edits:
        return net
    config = net.get_config()
    for layer in config["layers"]:
        layer["config"].update(edits.get(layer["config"]["name"], {}))
        # Recorded input shapes go stale past the first edit; layers build when called.
        layer.pop("build_config", None)
    edited = keras.Model.from_config(config)
    edited.set_weights(net.get_weights())
    return edited


@register_backbone("mobilenet")
def mobilenet(input_shape=(256, 128, 3), weights=None, last_stride=2, dilation=1, alpha=1.0):
    """Keras MobileNet v1 (Howard et al. 2017), width ``alpha`` in 0.25, 0.5, 0.75, 1.0.

    Stages (last layer): stage1 conv_pw_1_relu, stage2 conv_pw_3_relu, stage3
    conv_pw_5_relu, stage4 conv_pw_11_relu, stage5 conv_pw_13_relu. Stages 3-5
    can be dilated: a dilated stage's first depthwise convolution (which
    downsampled) runs at stride 1 with the previous stage's rate, its other
    depthwise 3x3 convolutions with the stage's rate.
    """
    if alpha not in (0.25, 0.5, 0.75, 1.0):
        raise ReIDError(f"mobilenet: alpha must be 0.25, 0.5, 0.75 or 1.0, got {alpha}.")
    plans = stage_plans("mobilenet", 5, last_stride, dilation, dilatable=3)
    # Depthwise blocks of each stage (block 1 belongs to stage1 with conv1).
    blocks = {3: (4, 5), 4: tuple(range(6, 12)), 5: (12, 13)}
    edits = {}
    for stage, numbers in blocks.items():
        plan = plans[stage - 1]
        if plan == StagePlan(2, 1, 1):
            continue
        first, *rest = numbers
        # Keras pads (0, 1) for its stride-2 "valid" convolution; at stride 1 the
        # padding that keeps the size is the rate on each side.
        edits[f"conv_pad_{first}"] = {"padding": ((plan.entry_rate,) * 2,) * 2}
        edits[f"conv_dw_{first}"] = {
            "strides": (plan.stride, plan.stride),
            "dilation_rate": (plan.entry_rate, plan.entry_rate),
        }
        for number in rest:
            edits[f"conv_dw_{number}"] = {"dilation_rate": (plan.rate, plan.rate)}
    net = _application(
        keras.applications.MobileNet,
        "mobilenet",
        input_shape,
        check_weights(weights),
        edits,
        alpha=alpha,
    )
    stages = {f"stage{k + 1}": f"conv_pw_{n}_relu" for k, n in enumerate((1, 3, 5, 11, 13))}
    return TrunkParts(net, "tf", stages)


@register_backbone("resnet50")
def resnet50(input_shape=(256, 128, 3), weights=None, last_stride=2, dilation=1):
    """Keras ResNet50 (He et al. 2016), which loads Keras' ImageNet no-top weight file.

    Stages (last layer): stage1 conv1_relu, stage2 conv2_block3_out, stage3
    conv3_block4_out, stage4 conv4_block6_out, stage5 conv5_block3_out. Keras'
    ResNet50 downsamples in the first 1x1 convolution of a stage (and its 1x1
    shortcut); ``last_stride`` sets those strides in conv5_block1. Stages 3-5
    can be dilated: a dilated stage's 1x1 convolutions run at stride 1 and all
    its 3x3 convolutions (``conv<s>_block<b>_2_conv``) use the stage's rate.
    """
    plans = stage_plans("resnet50", 5, last_stride, dilation, dilatable=3)
    edits = {}
    for stage, blocks in ((3, 4), (4, 6), (5, 3)):
        plan = plans[stage - 1]
        for name in (f"conv{stage}_block1_1_conv", f"conv{stage}_block1_0_conv"):
            edits[name] = {"strides": (plan.stride, plan.stride)}
        if plan.rate > 1:
            for block in range(1, blocks + 1):
                edits[f"conv{stage}_block{block}_2_conv"] = {"dilation_rate": (plan.rate,) * 2}
    if all(plans[s - 1] == StagePlan(2, 1, 1) for s in (3, 4, 5)):
        edits = {}
    net = _application(
        keras.applications.ResNet50, "resnet50", input_shape, check_weights(weights), edits
    )
    return TrunkParts(net, "caffe", RESNET50_STAGES)


@register_backbone("small_convnet")
def small_convnet(
    input_shape=(64, 32, 3), weights=None, last_stride=2, dilation=1, widths=(32, 64, 128, 256)
):
    """A plain VGG-style trunk for CPU runs trained from scratch (no ImageNet weights).

    Per width: conv 3x3 -> BN -> ReLU -> conv 3x3 stride 2 -> BN -> ReLU; the
    stride-2 convolution of width k ends stage k (``block<k>_down_relu``) and
    ``last_stride`` sets the last one's stride. It has no dilation. On
    SynthReID at 64x32 it learns in minutes where MobileNet-0.25 from scratch
    barely moves (Rank-1 0.84 vs 0.02 on synth-b after 20-30 epochs): depthwise-
    separable convolutions this narrow need ImageNet initialisation.
    """
    if weights is not None:
        raise ReIDError("small_convnet has no pretrained weights; use weights=None.")
    plans = stage_plans("small_convnet", len(widths), last_stride, dilation, dilatable=0)
    net_input = keras.Input(shape=input_shape)
    x = net_input
    for index, width in enumerate(widths):
        for kind, stride in (("conv", 1), ("down", plans[index].stride)):
            name = f"block{index + 1}_{kind}"
            x = keras.layers.Conv2D(
                width, 3, strides=stride, padding="same", use_bias=False, name=name
            )(x)
            x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
    net = keras.Model(net_input, x, name="small_convnet")
    stages = {f"stage{k + 1}": f"block{k + 1}_down_relu" for k in range(len(widths))}
    return TrunkParts(net, "tf", stages)


def build_backbone(
    name, input_shape=(256, 128, 3), weights=None, bn_momentum=None, stages=None, **options
):
    """A registered trunk by name: images -> last feature map, or a dict of stage outputs.

    Args:
        name: "mobilenet", "resnet50", "small_convnet", "bn_inception" or "resnext50".
        input_shape: (height, width, 3), at least 32x32.
        weights: None, "imagenet" (Keras applications only) or a weight file path.
        bn_momentum: overrides the momentum of every BatchNormalization layer of
            the trunk (Keras' default is 0.99). A trunk trained from scratch for a
            few thousand steps changes faster than 0.99 moving statistics follow,
            and the lag compounds through MobileNet's 27 BN layers until
            inference-mode features of all images coincide; 0.9 keeps them in step.
        stages: None (default: the output is the last feature map) or a tuple of
            stage names ("stage1".."stage5"): the output is then the dict
            {stage: feature map}, and the trunk stops at the deepest one asked for.
        **options: the trunk's own, e.g. ``last_stride``, ``dilation`` (see the
            module docstring) and mobilenet's ``alpha``.

    Example:
        >>> trunk = build_backbone("mobilenet", (64, 32, 3), alpha=0.25)
        >>> trunk.output.shape
        (None, 2, 1, 256)
        >>> maps = build_backbone("resnet50", (64, 32, 3), stages=("stage4", "stage5"),
        ...                       last_stride=1)
        >>> {k: v.shape for k, v in maps.output.items()}
        {'stage4': (None, 4, 2, 1024), 'stage5': (None, 4, 2, 2048)}
    """
    builder = BACKBONES.get(name)
    height, width = input_shape[:2]
    if min(height, width) < 32:
        raise ReIDError(f"{name}: input size {height}x{width} is below the 32x32 minimum.")
    try:
        parts = builder(input_shape=tuple(input_shape), weights=weights, **options)
    except TypeError as error:
        raise ReIDError(f"{name}: {error}") from None
    net = parts.net
    if stages is not None:
        if isinstance(stages, str) or not stages or any(s not in parts.stages for s in stages):
            raise ReIDError(
                f"{name}: stages must be a non-empty tuple of {', '.join(parts.stages)}. "
                f"Received: stages={stages!r}"
            )
        outputs = {s: net.get_layer(parts.stages[s]).output for s in stages}
        net = keras.Model(net.inputs, outputs, name=net.name)
    if bn_momentum is not None:
        if not 0.0 <= bn_momentum < 1.0:
            raise ReIDError(f"bn_momentum must be in [0, 1), got {bn_momentum}.")
        for layer in net.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    images = keras.Input(shape=input_shape, name="images")
    features = net(TrunkPreprocessing(parts.preprocessing, name="preprocessing")(images))
    return keras.Model(images, features, name="trunk")
