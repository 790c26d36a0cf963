"""The self-attention learning model: a dilated multi-level trunk with stage-6 and attention maps.

"Self-Attention Learning for Person Re-Identification" (SAL), Sec. 3.1-3.2:
ResNet50 whose convolutions after stage 3 are dilated instead of strided
(the dilation doubles at each removed downsampling, so stages 4, 5 and 6
keep stage 3's resolution: 32x16 at 256x128), an added stage 6 "the same as
stage5 other than the number of channels is half of stage5", the last
convolution outputs of stages 4, 5 and 6 concatenated, globally pooled and
projected to a 1024-d feature, and the attention map of each of those three
stages (eq. 1) as the output "attention", (B, 3, H, W), which the
self-attention constraint (eq. 2, the loss ``sac``) trains.

Choices the paper leaves open, made here:

- Stage 6's dilation: 2 (``stage6_dilation``). The paper adds stage 6 "to
  alleviate gridding artifacts" of the dilation-4 stage 5; a stage at the
  same rate 4 samples the same sparse grid again, while rate 2 fills in
  between its taps, as the degridding layers of dilated residual networks
  (Yu, Koltun & Funkhouser, CVPR 2017) step the rate down after the largest.
- The feature is l2-normalised for the metric losses (``normalize_embedding``),
  as in MSML's head (:func:`keras_reid.models.msml.feature_head`); the
  classifier reads it before normalisation. The paper does not say.
- The attention maps are taken from each stage's last block output (after
  the residual addition and ReLU), the input of the next stage.

The ablation switches of the paper's Table 1 are arguments: ``dilation``
(DIL; ``1`` gives the plain strided ResNet50), ``multi_level`` (Multi: the
concatenation, else the last stage alone) and ``attention`` (the output the
SAC loss needs; it requires one resolution, so DIL).
"""

import keras

from keras_reid.errors import ReIDError
from keras_reid.layers.attention import MultiLevelAttention
from keras_reid.models.backbones import build_backbone
from keras_reid.models.msml import feature_head
from keras_reid.models.registry import check_num_classes, register_model


def _batch_norm(name, bn_momentum, epsilon):
    return keras.layers.BatchNormalization(
        epsilon=epsilon, momentum=0.99 if bn_momentum is None else bn_momentum, name=name
    )


def resnet_stage6(x, width, dilation, bn_momentum=None, blocks=3):
    """Three ResNet50 bottleneck blocks of ``width`` (stage 5's 512, halved: 256) at stride 1.

    The blocks of Keras' ResNet50 (1x1, 3x3 dilated, 1x1 to 4 x width, with a
    1x1 projection shortcut in the first), named ``stage6_block<b>_*``.
    """
    for block in range(1, blocks + 1):
        name = f"stage6_block{block}"
        shortcut = x
        if block == 1:
            shortcut = keras.layers.Conv2D(4 * width, 1, name=f"{name}_0_conv")(x)
            shortcut = _batch_norm(f"{name}_0_bn", bn_momentum, 1.001e-5)(shortcut)
        y = keras.layers.Conv2D(width, 1, name=f"{name}_1_conv")(x)
        y = _batch_norm(f"{name}_1_bn", bn_momentum, 1.001e-5)(y)
        y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
        y = keras.layers.Conv2D(
            width, 3, padding="same", dilation_rate=dilation, name=f"{name}_2_conv"
        )(y)
        y = _batch_norm(f"{name}_2_bn", bn_momentum, 1.001e-5)(y)
        y = keras.layers.Activation("relu", name=f"{name}_2_relu")(y)
        y = keras.layers.Conv2D(4 * width, 1, name=f"{name}_3_conv")(y)
        y = _batch_norm(f"{name}_3_bn", bn_momentum, 1.001e-5)(y)
        x = keras.layers.Add(name=f"{name}_add")([shortcut, y])
        x = keras.layers.Activation("relu", name=f"{name}_out")(x)
    return x


def mobilenet_stage6(x, width, dilation, bn_momentum=None, blocks=2):
    """Two MobileNet depthwise-separable blocks to ``width`` channels (stage 5's, halved).

    Each: depthwise 3x3 (dilated) + BN + ReLU6, pointwise 1x1 + BN + ReLU6, as
    Keras' MobileNet, named ``stage6_dw_<b>`` / ``stage6_pw_<b>``.
    """
    for block in range(1, blocks + 1):
        x = keras.layers.DepthwiseConv2D(
            3, padding="same", dilation_rate=dilation, use_bias=False, name=f"stage6_dw_{block}"
        )(x)
        x = _batch_norm(f"stage6_dw_{block}_bn", bn_momentum, 1e-3)(x)
        x = keras.layers.ReLU(6.0, name=f"stage6_dw_{block}_relu")(x)
        x = keras.layers.Conv2D(width, 1, use_bias=False, name=f"stage6_pw_{block}")(x)
        x = _batch_norm(f"stage6_pw_{block}_bn", bn_momentum, 1e-3)(x)
        x = keras.layers.ReLU(6.0, name=f"stage6_pw_{block}_relu")(x)
    return x


# Trunk -> (stage-6 builder, the bottleneck width of its stage 5 (ResNet) or
# its output channels (MobileNet): the builder halves it).
STAGE6 = {"resnet50": (resnet_stage6, 512), "mobilenet": (mobilenet_stage6, 1024)}


def _dilation_text(dilation):
    return f"dilation={list(dilation) if isinstance(dilation, tuple) else dilation!r}"


@register_model("sal")
def build_sal_model(
    backbone="resnet50",
    input_shape=(256, 128, 3),
    weights=None,
    dilation=(2, 4),
    stage6=True,
    stage6_dilation=2,
    multi_level=True,
    attention=True,
    feature_dim=1024,
    normalize_embedding=True,
    num_classes=None,
    bn_momentum=None,
    backbone_options=None,
):
    """Images -> {"embedding", "logits" (with num_classes), "attention" (B, L, H, W)}.

    Args:
        backbone: "resnet50" (the paper's) or "mobilenet" (CPU sizes); the
            trunks with a stage 6 (:data:`STAGE6`). Default "resnet50".
        input_shape: (height, width, 3). Default (256, 128, 3), the paper's.
        weights: None, "imagenet" or a no-top weight file: dilation changes no
            kernel shape, so ImageNet weights load; stage 6 starts random.
        dilation: the rates of stages 4 and 5, ``(2, 4)`` (default: the
            paper's, resolution kept from stage 3), or 1 for the plain
            strided trunk (Table 1 without DIL).
        stage6: add stage 6 (default True).
        stage6_dilation: its dilation rate (default 2; see the module docstring).
        multi_level: pool the concatenation of stages 4, 5 (and 6) (default
            True), else the last stage alone.
        attention: add the output "attention", the attention maps of stages
            4, 5 (and 6) (default True). Needs them at one resolution.
        feature_dim: size of the feature. Default 1024.
        normalize_embedding: whether "embedding" is l2-normalised. Default True.
        num_classes: None (no classifier) or the number of training identities.
        bn_momentum: BatchNorm momentum of the trunk and stage 6 (None: 0.99).
        backbone_options: more trunk options, e.g. ``{"alpha": 0.25}``.

    Example:
        >>> model = build_sal_model("mobilenet", (128, 64, 3), num_classes=10,
        ...                         backbone_options={"alpha": 0.25})
        >>> model.output["attention"].shape  # stages 4-6 at stride 8
        (None, 3, 16, 8)
    """
    check_num_classes(num_classes)
    options = dict(backbone_options or {})
    dilation = tuple(dilation) if isinstance(dilation, (list, tuple)) else dilation
    if dilation != 1:
        options.setdefault("last_stride", 1)  # a dilated last stage does not downsample
    if stage6 and backbone not in STAGE6:
        raise ReIDError(
            f"sal: no stage 6 for backbone {backbone!r}; use one of {', '.join(STAGE6)} or "
            "stage6: false."
        )
    trunk = build_backbone(
        backbone,
        input_shape,
        weights,
        bn_momentum=bn_momentum,
        stages=("stage4", "stage5"),
        dilation=dilation,
        **options,
    )
    images = keras.Input(shape=input_shape, name="images")
    stages = trunk(images)
    levels = {"stage4": stages["stage4"], "stage5": stages["stage5"]}
    if stage6:
        builder, width = STAGE6[backbone]
        channels = int(width * options.get("alpha", 1.0)) // 2
        levels["stage6"] = builder(levels["stage5"], channels, stage6_dilation, bn_momentum)
    sizes = {name: tuple(x.shape[1:3]) for name, x in levels.items()}
    if (multi_level or attention) and len(set(sizes.values())) > 1:
        shapes = ", ".join(f"{name} {h}x{w}" for name, (h, w) in sizes.items())
        raise ReIDError(
            f"sal: multi-level features and attention maps need stages 4-6 at one "
            f"resolution, but {_dilation_text(dilation)} gives {shapes}; dilate "
            "(dilation: [2, 4]) or set multi_level: false and attention: false."
        )
    if multi_level:
        features = keras.layers.Concatenate(name="multi_level")(list(levels.values()))
    else:
        features = list(levels.values())[-1]
    pooled = keras.layers.GlobalAveragePooling2D(name="trunk_features")(features)
    outputs = feature_head(pooled, feature_dim, normalize_embedding, num_classes)
    if attention:
        outputs["attention"] = MultiLevelAttention(list(levels), name="attention")(
            list(levels.values())
        )
    return keras.Model(images, outputs, name=f"{backbone}_sal")
