"""The TriNet-style metric embedding model (Hermans et al. 2017; EmbAE paper, Sec. 3.1)."""

import keras

from keras_reid.errors import check_one_of
from keras_reid.layers.classification import ClassificationHead
from keras_reid.models.backbones import build_backbone
from keras_reid.models.registry import check_num_classes, register_model

# The order of the hidden layer's BatchNorm and ReLU: "bn_relu" is TriNet's
# (Hermans et al.: Dense 1024, BatchNorm, ReLU, Dense 128), "relu_bn" the EmbAE
# paper's (Sec. 4.2: "dense layer with 1024 units and ReLU activations followed
# by batch normalization followed by dense layer with 128 units").
HEAD_ORDERS = ("bn_relu", "relu_bn")


def check_head_order(order):
    """``order`` when it is one of ``HEAD_ORDERS``, else a ReIDError."""
    hint = "TriNet's BatchNorm before ReLU, or the EmbAE paper's ReLU before BatchNorm"
    return check_one_of("head_order", order, HEAD_ORDERS, hint)


def head_order(model, name="embedding"):
    """The order ("bn_relu" or "relu_bn") of the head ``name`` in a built model.

    Read from the graph: the layer that feeds "{name}_bn" is "{name}_relu" in
    the EmbAE paper's order, "{name}_fc1" in TriNet's.

    Example:
        >>> head_order(build_embedding_model(head_order="relu_bn"))
        'relu_bn'
    """
    node = model.get_layer(f"{name}_bn")._inbound_nodes[0]
    feeding = node.input_tensors[0]._keras_history.operation.name
    return "relu_bn" if feeding == f"{name}_relu" else "bn_relu"


def embedding_head(
    features, embedding_dim=128, hidden=1024, name="embedding", bn_momentum=0.99, order="bn_relu"
):
    """GAP'd features -> Dense(hidden) -> BatchNorm, ReLU (in ``order``) -> Dense(embedding_dim).

    Used for f_emb (z_id) and, with another name, f_nui (z_nui) in EmbAE. The
    layers are "{name}_fc1", "{name}_bn", "{name}_relu" and ``name`` (linear).

    Args:
        order: "bn_relu" (TriNet, Hermans et al.; the default) or "relu_bn"
            (the EmbAE paper, Potapov et al. Sec. 4.2).

    Example:
        >>> z_id = embedding_head(features, order="relu_bn")
    """
    check_head_order(order)
    x = keras.layers.Dense(hidden, name=f"{name}_fc1")(features)
    bn = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")
    relu = keras.layers.ReLU(name=f"{name}_relu")
    x = relu(bn(x)) if order == "bn_relu" else bn(relu(x))
    # float32 even under a mixed-precision policy: the losses and the served
    # embedding want full precision, and this layer is cheap.
    return keras.layers.Dense(embedding_dim, name=name, dtype="float32")(x)


@register_model("trinet")
def build_embedding_model(
    backbone="mobilenet",
    alpha=1.0,
    input_shape=(256, 128, 3),
    weights=None,
    embedding_dim=128,
    bn_momentum=None,
    num_classes=None,
    backbone_options=None,
    head_order="bn_relu",
):
    """A functional model from raw RGB images to a named output "embedding" (model "trinet").

    Args:
        backbone: a registered trunk, e.g. "mobilenet", "resnet50" or "small_convnet".
        alpha: MobileNet width (ignored by other trunks).
        input_shape: (height, width, 3); 256x128 as in the papers, smaller for CPU runs.
        weights: None, "imagenet" or the path of a local no-top .h5 file.
        embedding_dim: size of the embedding (128 in the paper).
        bn_momentum: BatchNorm momentum of the trunk and head (None: Keras' 0.99);
            0.9 for short from-scratch CPU runs, see ``build_backbone``.
        num_classes: None (default: no classifier) or the number of training
            identities: adds the output "logits", a
            :class:`~keras_reid.layers.ClassificationHead` on the embedding.
        backbone_options: more trunk options, e.g. ``{"last_stride": 1}``.
        head_order: "bn_relu" (TriNet's head, the default) or "relu_bn" (the
            EmbAE paper's: Dense 1024 ReLU, then BatchNorm, then Dense 128).

    The trunk is the nested model "trunk"; its global-average-pooled output is
    the layer "trunk_features" (what EmbAE's autoencoder reconstructs).

    Example:
        >>> model = build_embedding_model(alpha=0.25, input_shape=(64, 32, 3))
        >>> model.output_names
        ['embedding']
    """
    check_num_classes(num_classes)
    check_head_order(head_order)
    options = {"alpha": alpha} if backbone == "mobilenet" else {}
    options.update(backbone_options or {})
    trunk = build_backbone(backbone, input_shape, weights, bn_momentum=bn_momentum, **options)
    images = keras.Input(shape=input_shape, name="images")
    features = keras.layers.GlobalAveragePooling2D(name="trunk_features")(trunk(images))
    embedding = embedding_head(
        features, embedding_dim, bn_momentum=bn_momentum or 0.99, order=head_order
    )
    outputs = {"embedding": embedding}
    if num_classes is not None:
        outputs["logits"] = ClassificationHead(num_classes, dtype="float32", name="logits")(
            embedding
        )
    return keras.Model(images, outputs, name=f"{backbone}_embedding")
