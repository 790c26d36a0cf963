"""Metric embedding autoencoders (EmbAE; Potapov et al., the autoencoder stages).

The autoencoder works on the trunk's global-average-pooled features, which
the trunk (frozen in every autoencoder stage) computes once per image:

    features ──f_emb──▶ z_id  ─┐
        │                      ├─ concat ─f_dec─▶ reconstruction ≈ features (MSE)
        └────f_nui──▶ z_nui ───┘

- f_emb is the stage-1 embedding head (layers "embedding_fc1", "embedding_bn",
  "embedding_relu", "embedding"), so its weights are copied by layer name; f_emb
  and f_nui take the stage-1 head's order of BatchNorm and ReLU (the paper's
  "relu_bn" in the EmbAE configs, TriNet's "bn_relu" by default).
- f_nui has the same structure with :class:`~keras_reid.layers.grouped.GroupedDense`
  layers ("nuisance_fc1", "nuisance_bn", "nuisance_relu", "nuisance"): one
  weight set per group (groups=1: the common θ_nui; one per dataset; one per
  camera). Its BatchNormalization is shared by the groups: one set of
  statistics for every camera. A per-group BN would need its own grouped
  moments; the dense layers already give each group its own affine map before
  the BN, which can absorb a camera's offset and scale, so sharing the
  statistics costs little and keeps the layer a stock Keras one.
- f_dec: Dense(decoder_hidden, ReLU) "decoder_fc1" -> Dense(feature size) "reconstruction".

:func:`build_embae_model` is the model trained on cached features (inputs
``{"features", "group"}``); :func:`build_embae_inference_model` joins it to
the stage-1 trunk into one images -> ``{"embedding", "nuisance"}`` model.
"""

import keras

from keras_reid.checks import is_int
from keras_reid.errors import ReIDError
from keras_reid.layers.grouped import GroupedDense, copy_group_weights
from keras_reid.models.embedding import check_head_order, embedding_head, head_order

EMBEDDING_LAYERS = ("embedding_fc1", "embedding_bn", "embedding")
NUISANCE_LAYERS = ("nuisance_fc1", "nuisance_bn", "nuisance")
DECODER_LAYERS = ("decoder_fc1", "reconstruction")
PARTS = {"emb": EMBEDDING_LAYERS, "nui": NUISANCE_LAYERS, "dec": DECODER_LAYERS}


def nuisance_head(
    features, group, groups=1, nui_dim=128, hidden=1024, name="nuisance", order="bn_relu"
):
    """f_nui: GroupedDense(hidden) -> shared BatchNorm, ReLU (in ``order``) -> GroupedDense(nui).

    The same structure as :func:`~keras_reid.models.embedding.embedding_head`
    with a weight set per group (EmbAE, Potapov et al.).

    Args:
        features: the trunk features tensor [B, F].
        group: the int group index tensor [B].
        groups: weight sets (1: common θ_nui). Default 1.
        nui_dim: size of z_nui. Default 128.
        hidden: size of the hidden layer. Default 1024.
        name: output layer name; the others are f"{name}_fc1", ... Default "nuisance".
        order: "bn_relu" (TriNet's, the default) or "relu_bn" (the paper's), as
            :func:`~keras_reid.models.embedding.embedding_head`.

    Example:
        >>> z_nui = nuisance_head(features, group, groups=6)
    """
    check_head_order(order)
    x = GroupedDense(hidden, groups, name=f"{name}_fc1")([features, group])
    bn = keras.layers.BatchNormalization(name=f"{name}_bn")
    relu = keras.layers.ReLU(name=f"{name}_relu")
    x = relu(bn(x)) if order == "bn_relu" else bn(relu(x))
    return GroupedDense(nui_dim, groups, name=name)([x, group])


def build_embae_model(
    feature_dim,
    embedding_dim=128,
    nui_dim=128,
    groups=1,
    hidden=1024,
    decoder_hidden=1024,
    head_order="bn_relu",
):
    """The EmbAE autoencoder on trunk features, with named outputs.

    Args:
        feature_dim: size F of the trunk's pooled features (MobileNet: 1024 x alpha).
        embedding_dim: size of z_id, that of the stage-1 embedding. Default 128.
        nui_dim: size of z_nui. Default 128.
        groups: θ_nui weight sets: 1 (common), datasets, or (dataset, camera)
            pairs. Default 1.
        hidden: hidden size of f_emb and f_nui (the stage-1 head's). Default 1024.
        decoder_hidden: hidden size of f_dec. Default 1024.
        head_order: the order of BatchNorm and ReLU in f_emb and f_nui: that of
            the stage-1 head ("bn_relu", TriNet's, the default; "relu_bn", the
            EmbAE paper's).

    Returns:
        a functional ``keras.Model`` named "embae" with inputs ``{"features":
        float32 [B, F], "group": int32 [B]}`` and outputs ``{"embedding": z_id
        [B, embedding_dim], "nuisance": z_nui [B, nui_dim], "reconstruction":
        [B, F]}``. Train it with ``loss={"reconstruction": "mse"}``.

    Example:
        >>> model = build_embae_model(256, groups=6)
        >>> copy_stage1_head(stage1_model, model)
    """
    for name, value in (
        ("feature_dim", feature_dim),
        ("embedding_dim", embedding_dim),
        ("nui_dim", nui_dim),
        ("groups", groups),
        ("hidden", hidden),
        ("decoder_hidden", decoder_hidden),
    ):
        if not is_int(value, minimum=1):
            raise ReIDError(
                f"build_embae_model: {name} must be a positive integer. Received: {name}={value!r}"
            )
    check_head_order(head_order)
    features = keras.Input((feature_dim,), name="features")
    group = keras.Input((), dtype="int32", name="group")
    z_id = embedding_head(features, embedding_dim, hidden, name="embedding", order=head_order)
    z_nui = nuisance_head(
        features, group, groups, nui_dim, hidden, name="nuisance", order=head_order
    )
    code = keras.layers.Concatenate(name="code")([z_id, z_nui])
    x = keras.layers.Dense(decoder_hidden, activation="relu", name="decoder_fc1")(code)
    reconstruction = keras.layers.Dense(feature_dim, name="reconstruction")(x)
    return keras.Model(
        {"features": features, "group": group},
        {"embedding": z_id, "nuisance": z_nui, "reconstruction": reconstruction},
        name="embae",
    )


def embae_hyperparameters(model):
    """The :func:`build_embae_model` arguments that rebuild ``model``'s architecture."""
    return {
        "feature_dim": int(model.get_layer("reconstruction").units),
        "embedding_dim": int(model.get_layer("embedding").units),
        "nui_dim": int(model.get_layer("nuisance").units),
        "groups": int(model.get_layer("nuisance").groups),
        "hidden": int(model.get_layer("embedding_fc1").units),
        "decoder_hidden": int(model.get_layer("decoder_fc1").units),
        "head_order": head_order(model),
    }


def stage1_dimensions(stage1_model):
    """(input shape, trunk feature size, head hidden size, embedding size) of a stage-1 model.

    Its head's order is :func:`~keras_reid.models.embedding.head_order`.
    """
    try:
        features = stage1_model.get_layer("trunk_features")
        fc1 = stage1_model.get_layer("embedding_fc1")
        embedding = stage1_model.get_layer("embedding")
    except ValueError:
        raise ReIDError(
            f"model {stage1_model.name!r} is not a keras_reid stage-1 embedding model (it needs "
            "the layers trunk_features, embedding_fc1 and embedding; see "
            "build_embedding_model)."
        ) from None
    return (
        tuple(stage1_model.inputs[0].shape[1:]),
        int(features.output.shape[-1]),
        int(fc1.units),
        int(embedding.units),
    )


def copy_stage1_head(stage1_model, ae_model):
    """Initialise f_emb of ``ae_model`` with the stage-1 head (weights copied by layer name).

    Raises:
        ReIDError: when the stage-1 trunk features or head differ in size from
            the autoencoder's, naming both.
    """
    _, feature_dim, hidden, embedding_dim = stage1_dimensions(stage1_model)
    expected = embae_hyperparameters(ae_model)
    found = {
        "feature_dim": feature_dim,
        "hidden": hidden,
        "embedding_dim": embedding_dim,
        "head_order": head_order(stage1_model),
    }
    wanted = {key: expected[key] for key in found}
    if found != wanted:
        raise ReIDError(
            f"the stage-1 model has trunk features/head {found} but the autoencoder "
            f"expects {wanted}; build the autoencoder from the stage-1 model's sizes and order."
        )
    for name in EMBEDDING_LAYERS:
        ae_model.get_layer(name).set_weights(stage1_model.get_layer(name).get_weights())


def set_trainable(model, emb, nui, dec):
    """Freeze or unfreeze θ_emb, θ_nui and θ_dec of an EmbAE model (recompile afterwards).

    A frozen BatchNormalization also runs in inference mode (Keras 3), so its
    moving statistics stay fixed too.

    Example:
        >>> set_trainable(model, emb=False, nui=True, dec=True)  # source pre-training
    """
    for part, flag in (("emb", emb), ("nui", nui), ("dec", dec)):
        for name in PARTS[part]:
            model.get_layer(name).trainable = bool(flag)


def with_nuisance_groups(model, groups, reset=False):
    """A copy of an EmbAE model with ``groups`` θ_nui weight sets.

    f_emb and f_dec are copied. f_nui's first ``min(old, new)`` groups and its
    shared BatchNormalization are copied unless ``reset``; any further groups
    (a new target dataset or new target cameras) start freshly initialised.
    With ``reset=True`` the whole of f_nui is re-initialised (EmbAE's
    "new θ_nui" fine-tuning with a common θ_nui).

    Args:
        model: an EmbAE model from :func:`build_embae_model`.
        groups: the new number of weight sets.
        reset: re-initialise every group and the BatchNormalization. Default False.

    Example:
        >>> target_ready = with_nuisance_groups(pretrained, groups=pretrained_groups + 6)
    """
    options = embae_hyperparameters(model)
    old_groups = options["groups"]
    options["groups"] = int(groups)
    new = build_embae_model(**options)
    for name in EMBEDDING_LAYERS + DECODER_LAYERS:
        new.get_layer(name).set_weights(model.get_layer(name).get_weights())
    if not reset:
        keep = min(old_groups, options["groups"])
        for name in ("nuisance_fc1", "nuisance"):
            copy_group_weights(model.get_layer(name), new.get_layer(name), keep)
        new.get_layer("nuisance_bn").set_weights(model.get_layer("nuisance_bn").get_weights())
    return new


def adapt_embedding_statistics(model, features):
    """Re-estimate f_emb's BatchNorm statistics on ``features``; change nothing else.

    The control of EmbAE's fine-tuning ("bn_adapt"): training θ_emb on the
    target re-estimates "embedding_bn"'s moving mean and variance there, which
    alone can give part of the gain (AdaBN; Li et al., "Revisiting Batch
    Normalization For Practical Domain Adaptation", 2016). Here the statistics
    are set to the exact mean and (biased, as BatchNormalization's own
    batch) variance of the BatchNorm's input over every row and view of
    ``features``; every weight but those two is left as it was.

    Args:
        model: an EmbAE model (:func:`build_embae_model`) or a stage-1 embedding
            model whose head is "embedding_fc1" ... "embedding".
        features: cached trunk features, [N, F] or [N, V, F] (every view counts).

    Example:
        >>> adapt_embedding_statistics(control, target_train_features)
    """
    rows = features.reshape(-1, features.shape[-1])
    x = model.get_layer("embedding_fc1")(rows)
    if head_order(model) == "relu_bn":
        x = model.get_layer("embedding_relu")(x)
    x = keras.ops.convert_to_numpy(x).astype("float64")
    bn = model.get_layer("embedding_bn")
    bn.moving_mean.assign(x.mean(axis=0).astype("float32"))
    bn.moving_variance.assign(x.var(axis=0).astype("float32"))


def build_embae_inference_model(stage1_model, ae_model):
    """One functional model: images (+ group) -> {"embedding": z_id, "nuisance": z_nui}.

    The stage-1 trunk and pooling, followed by the autoencoder's f_emb and
    f_nui (the decoder is a training device and is left out). The layers are
    shared with the two models, so the weights are the trained ones; the
    result saves to and loads from ``.keras`` after ``import keras_reid``.

    Args:
        stage1_model: the stage-1 embedding model (its nested "trunk" and
            "trunk_features" layers are used).
        ae_model: a trained EmbAE model from :func:`build_embae_model`.

    Returns:
        a ``keras.Model`` named "embae_inference" with inputs ``{"images":
        float32 [B, H, W, 3] raw RGB, "group": int32 [B]}`` (the θ_nui group:
        0 for a common θ_nui; see the run's ``groups.json``) and outputs
        ``{"embedding", "nuisance"}``.

    Example:
        >>> model = build_embae_inference_model(stage1, keras.models.load_model("cam_nui.keras"))
        >>> z = model.predict({"images": images, "group": groups})["embedding"]
    """
    image_shape, feature_dim, _, _ = stage1_dimensions(stage1_model)
    expected = embae_hyperparameters(ae_model)["feature_dim"]
    if feature_dim != expected:
        raise ReIDError(
            f"the stage-1 trunk gives {feature_dim} features but the autoencoder expects "
            f"{expected}; use the stage-1 model the autoencoder was trained on."
        )
    images = keras.Input(image_shape, name="images")
    group = keras.Input((), dtype="int32", name="group")
    trunk_features = stage1_model.get_layer("trunk_features")
    features = trunk_features(stage1_model.get_layer("trunk")(images))
    middle = ("bn", "relu") if head_order(ae_model) == "bn_relu" else ("relu", "bn")
    outputs = {}
    x = ae_model.get_layer("embedding_fc1")(features)
    for part in middle:
        x = ae_model.get_layer(f"embedding_{part}")(x)
    outputs["embedding"] = ae_model.get_layer("embedding")(x)
    x = ae_model.get_layer("nuisance_fc1")([features, group])
    for part in middle:
        x = ae_model.get_layer(f"nuisance_{part}")(x)
    outputs["nuisance"] = ae_model.get_layer("nuisance")([x, group])
    return keras.Model({"images": images, "group": group}, outputs, name="embae_inference")
