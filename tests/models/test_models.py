"""The model registry: trinet and msml, their named outputs, heads and bad arguments."""

import keras
import numpy as np
import pytest
from helpers import fit_one_step, set_bn_statistics

from keras_reid.errors import ReIDError
from keras_reid.losses import BatchHardTripletLoss, SoftmaxCrossEntropy
from keras_reid.models import MODELS, build_embedding_model, build_model

SIZE = (64, 32, 3)
SMALL = {"backbone": "small_convnet", "input_shape": SIZE}


def x_and_trunk_maps(model, batch=4):
    """Images, and the trunk's last maps on them computed through the trunk layer alone."""
    x = np.random.default_rng(1).uniform(0, 255, (batch, *SIZE)).astype("float32")
    set_bn_statistics(model, x)
    maps = np.asarray(model.get_layer("trunk")(x, training=False))
    return x, maps


def dense(layer, inputs):
    kernel, bias = (np.asarray(w) for w in layer.weights)
    return inputs @ kernel + bias


def test_registry_names_and_unknown_model():
    assert MODELS.names() == ["dien", "msml", "sal", "trinet"]
    with pytest.raises(
        ReIDError, match="unknown model 'dienn'; expected one of: dien, msml, sal, trinet"
    ):
        build_model("dienn")


def test_msml_head_by_hand():
    # Xiao et al. Sec. 4.2: GAP -> one FC to 1024 = the feature; metric losses on the
    # l2-normalised feature; the classifier reads the feature.
    model = build_model("msml", **SMALL, num_classes=5)
    assert sorted(model.output_names) == ["embedding", "logits"]
    assert model.get_layer("trunk") in model.layers  # top level, not nested deeper
    x, maps = x_and_trunk_maps(model)
    out = model(x, training=False)
    feature = dense(model.get_layer("embedding_fc"), maps.mean(axis=(1, 2)))
    assert feature.shape == (4, 1024)
    np.testing.assert_allclose(
        np.asarray(out["embedding"]),
        feature / np.linalg.norm(feature, axis=1, keepdims=True),
        rtol=1e-4,
        atol=1e-5,
    )
    np.testing.assert_allclose(np.linalg.norm(out["embedding"], axis=1), 1.0, rtol=1e-5)
    logits_layer = model.get_layer("logits").dense
    np.testing.assert_allclose(
        np.asarray(out["logits"]), dense(logits_layer, feature), rtol=1e-4, atol=1e-4
    )


def test_msml_without_normalisation_or_classifier():
    model = build_model(
        "msml",
        **SMALL,
        normalize_embedding=False,
        feature_dim=32,
        backbone_options={"widths": (8, 16)},
    )
    assert model.output_names == ["embedding"]
    x, maps = x_and_trunk_maps(model)
    expected = dense(model.get_layer("embedding"), maps.mean(axis=(1, 2)))
    np.testing.assert_allclose(
        np.asarray(model(x, training=False)["embedding"]), expected, rtol=1e-4, atol=1e-5
    )
    # Backbone options reach the trunk: two widths, 64x32 / 4 = 16x8 maps of 16 channels.
    assert tuple(model.get_layer("trunk").output.shape[1:]) == (16, 8, 16)


def test_trinet_is_the_embedding_model_plus_optional_logits():
    # Existing checkpoints and EmbAE address these layers by name.
    model = build_model("trinet", **SMALL, embedding_dim=16, num_classes=3)
    for name in ("trunk", "trunk_features", "embedding_fc1", "embedding_bn", "embedding"):
        model.get_layer(name)
    assert sorted(model.output_names) == ["embedding", "logits"]
    x, _ = x_and_trunk_maps(model)
    out = model(x, training=False)
    np.testing.assert_allclose(
        np.asarray(out["logits"]),
        dense(model.get_layer("logits").dense, np.asarray(out["embedding"])),
        rtol=1e-4,
        atol=1e-4,
    )
    plain = build_model("trinet", **SMALL, embedding_dim=16)
    reference = build_embedding_model("small_convnet", input_shape=SIZE, embedding_dim=16)
    assert plain.output_names == reference.output_names == ["embedding"]
    assert [w.shape for w in plain.weights] == [w.shape for w in reference.weights]
    assert [w.path for w in plain.weights] == [w.path for w in reference.weights]


@pytest.mark.parametrize("name", ["trinet", "msml"])
def test_models_train_on_a_loss_dict(name):
    model = build_model(name, **SMALL, num_classes=4, backbone_options={"widths": (8, 16)})
    x = np.random.default_rng(0).uniform(0, 255, (8, *SIZE)).astype("float32")
    pids = np.repeat(np.arange(4), 2)
    before = [np.asarray(w).copy() for w in model.trainable_weights]
    logs = fit_one_step(
        model,
        x,
        {"embedding": pids, "logits": pids},
        loss={"embedding": BatchHardTripletLoss(), "logits": SoftmaxCrossEntropy()},
    )
    assert {"embedding_loss", "logits_loss"} <= set(logs) and np.isfinite(logs["loss"])
    moved = [
        not np.array_equal(b, np.asarray(w))
        for b, w in zip(before, model.trainable_weights, strict=True)
    ]
    assert all(moved)


def test_bad_model_arguments_are_one_line():
    cases = [
        ("msml", {"num_classes": 0}, r"num_classes must be a positive int .* num_classes=0"),
        ("trinet", {"num_classes": 2.5}, r"Received: num_classes=2.5"),
        (
            "msml",
            {"embedding_dim": 128},
            r"model 'msml' takes no argument\(s\) embedding_dim; expected some of: backbone, ",
        ),
        ("trinet", {"backbone_options": {"dilation": 2}}, "small_convnet: this trunk does not"),
    ]
    for name, args, message in cases:
        with pytest.raises(ReIDError, match=message) as info:
            build_model(name, **{**SMALL, **args})
        assert "\n" not in str(info.value)


def test_msml_defaults_are_the_paper_setting():
    model = build_model("msml", backbone="bn_inception")
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_names == ["embedding"]
    assert model.get_layer("embedding_fc").units == 1024
    assert isinstance(model.get_layer("embedding"), keras.layers.UnitNormalization)
