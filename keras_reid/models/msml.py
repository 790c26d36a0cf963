"""The MSML model: trunk -> global average pooling -> one FC to 1024 = the feature.

Xiao et al. 2017, "Margin Sample Mining Loss: A Deep Learning Based Method
for Person Re-identification", Sec. 4.2: "The final feature dimensions of
Resnet50, Inception-v2 and Resnet50-X are transformed to 1024 through a
fully-connected layer", trained with softmax plus one metric loss on
l2-normalised features (Sec. 3, Eqs. 1-4: "a triplet of l2-normalized
features").
"""

import keras

from keras_reid.layers.classification import ClassificationHead
from keras_reid.models.backbones import build_backbone
from keras_reid.models.registry import check_num_classes, register_model


@register_model("msml")
def build_msml_model(
    backbone="resnet50",
    input_shape=(224, 224, 3),
    weights=None,
    feature_dim=1024,
    normalize_embedding=True,
    num_classes=None,
    bn_momentum=None,
    backbone_options=None,
):
    """Images -> {"embedding": the 1024-d feature, "logits": identity logits (optional)}.

    The trunk's last map is average-pooled ("trunk_features") and projected
    by one Dense layer to ``feature_dim``. With ``normalize_embedding`` (the
    default, as MSML computes its metric losses on l2-normalised features) the
    output "embedding" is that projection divided by its length; the
    classifier, when ``num_classes`` is given, reads the projection before
    normalisation (logits of a unit vector would be bounded by the weights'
    norms, which slows softmax training).

    Args:
        backbone: "resnet50", "bn_inception", "resnext50" (the paper's three) or
            any registered trunk. Default "resnet50".
        input_shape: (height, width, 3). Default (224, 224, 3), the paper's size.
        weights: None, "imagenet" (Keras applications only) or a weight file path.
        feature_dim: size of the feature. Default 1024.
        normalize_embedding: whether "embedding" is l2-normalised. Default True.
        num_classes: None (default: no classifier) or the number of training
            identities: adds the output "logits" (a ClassificationHead).
        bn_momentum: the trunk's BatchNorm momentum (None: Keras' 0.99).
        backbone_options: more trunk options, e.g. ``{"last_stride": 1}`` or
            ``{"alpha": 0.25}`` for mobilenet.

    Example:
        >>> model = build_msml_model("bn_inception", num_classes=751)  # Market-1501
        >>> sorted(model.output_names)
        ['embedding', 'logits']
    """
    check_num_classes(num_classes)
    trunk = build_backbone(
        backbone, input_shape, weights, bn_momentum=bn_momentum, **(backbone_options or {})
    )
    images = keras.Input(shape=input_shape, name="images")
    pooled = keras.layers.GlobalAveragePooling2D(name="trunk_features")(trunk(images))
    outputs = feature_head(pooled, feature_dim, normalize_embedding, num_classes)
    return keras.Model(images, outputs, name=f"{backbone}_msml")


def feature_head(pooled, feature_dim=1024, normalize_embedding=True, num_classes=None):
    """Pooled features -> {"embedding": FC(feature_dim) [l2-normalised], "logits": ...}.

    The MSML head, shared by the self-attention model: one Dense layer gives
    the feature; with ``normalize_embedding`` the output "embedding" is its
    unit vector (the Dense layer is then "embedding_fc"); the classifier, when
    ``num_classes`` is given, reads the feature before normalisation.
    """
    # float32 even under a mixed-precision policy, like the TriNet head.
    feature = keras.layers.Dense(
        feature_dim, dtype="float32", name="embedding_fc" if normalize_embedding else "embedding"
    )(pooled)
    outputs = {"embedding": feature}
    if normalize_embedding:
        outputs["embedding"] = keras.layers.UnitNormalization(dtype="float32", name="embedding")(
            feature
        )
    if num_classes is not None:
        outputs["logits"] = ClassificationHead(num_classes, dtype="float32", name="logits")(feature)
    return outputs
