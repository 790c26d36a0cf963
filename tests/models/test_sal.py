"""The self-attention learning model: dilated stages 4-6, multi-level feature, attention maps."""

import keras
import numpy as np
import pytest
from helpers import fit_one_step, save_and_reload, set_bn_statistics

from keras_reid.errors import ReIDError
from keras_reid.losses import QuadrupletLoss, SelfAttentionConstraint, SoftmaxCrossEntropy
from keras_reid.models import build_model

SMALL = {"backbone": "mobilenet", "input_shape": (64, 32, 3), "backbone_options": {"alpha": 0.25}}


def images(shape, batch=4, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (batch, *shape)).astype("float32")


def attention_reference(features):
    """SAL eq. (1) by loops: a_i = mean_j v_ij^2 at each position, then unit L2 norm."""
    batch, height, width, _ = features.shape
    maps = np.zeros((batch, height, width))
    for b in range(batch):
        for h in range(height):
            for w in range(width):
                maps[b, h, w] = np.mean(features[b, h, w] ** 2)
        maps[b] /= np.sqrt(np.sum(maps[b] ** 2))
    return maps


def levels_of(model, x):
    """The outputs of stages 4, 5 (through the trunk) and 6 (the model's own layers)."""
    trunk = model.get_layer("trunk")
    stage6 = model.get_layer("multi_level").input[2]
    probe = keras.Model(model.input, [*trunk(model.input).values(), stage6])
    return [np.asarray(level) for level in probe(x, training=False)]


def test_outputs_by_hand():
    model = build_model("sal", **SMALL, num_classes=5)
    assert sorted(model.output_names) == ["attention", "embedding", "logits"]
    x = images(SMALL["input_shape"])
    set_bn_statistics(model, x)
    out = model(x, training=False)
    levels = levels_of(model, x)
    # Stages 4-6 at stage 3's stride 8: 8x4; stage 6 has half of stage 5's 256 channels.
    assert [level.shape for level in levels] == [(4, 8, 4, 128), (4, 8, 4, 256), (4, 8, 4, 128)]
    pooled = np.concatenate([level.mean(axis=(1, 2)) for level in levels], axis=1)
    kernel, bias = (np.asarray(w) for w in model.get_layer("embedding_fc").weights)
    feature = pooled @ kernel + bias
    np.testing.assert_allclose(
        np.asarray(out["embedding"]),
        feature / np.linalg.norm(feature, axis=1, keepdims=True),
        rtol=1e-4,
        atol=1e-5,
    )
    attention = np.asarray(out["attention"])
    assert attention.shape == (4, 3, 8, 4)
    for index, level in enumerate(levels):
        np.testing.assert_allclose(
            attention[:, index], attention_reference(level), rtol=1e-4, atol=1e-6
        )


def dilation_rates(model):
    rates = {}
    for layer in model.get_layer("trunk").layers[-1].layers + model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            if layer.kernel_size == (3, 3):
                rates[layer.name] = (layer.strides[0], layer.dilation_rate[0])
    return rates


def test_resnet50_dilation_doubles_per_removed_downsampling_and_stage6_halves():
    model = build_model("sal", backbone="resnet50", input_shape=(64, 32, 3), feature_dim=32)
    rates = dilation_rates(model)
    assert rates["conv3_block1_2_conv"] == (1, 1)  # stage 3 as in ResNet50
    assert {rates[f"conv4_block{b}_2_conv"] for b in range(1, 7)} == {(1, 2)}
    assert {rates[f"conv5_block{b}_2_conv"] for b in range(1, 4)} == {(1, 4)}
    assert {rates[f"stage6_block{b}_2_conv"] for b in range(1, 4)} == {(1, 2)}
    # Stage 6: three bottlenecks of width 256 (stage 5's 512 / 2) to 1024 channels.
    assert model.get_layer("stage6_block1_2_conv").filters == 256
    assert tuple(model.get_layer("stage6_block3_out").output.shape[1:]) == (8, 4, 1024)
    assert tuple(model.output["attention"].shape[1:]) == (3, 8, 4)
    assert model.get_layer("multi_level").output.shape[-1] == 1024 + 2048 + 1024


def test_imagenet_weights_load_into_the_dilated_trunk(mobilenet_025_weights):
    reference = keras.applications.MobileNet(
        include_top=False, alpha=0.25, weights=str(mobilenet_025_weights), input_shape=(224, 224, 3)
    )
    model = build_model("sal", **SMALL, weights=str(mobilenet_025_weights))
    net = model.get_layer("trunk").layers[-1]
    assert len(net.weights) == len(reference.weights)
    for got, want in zip(net.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_the_ablation_switches():
    # Table 1 without DIL: the plain strided trunk, the last stage pooled, no maps.
    plain = build_model(
        "sal", **SMALL, dilation=1, stage6=False, multi_level=False, attention=False
    )
    assert plain.output_names == ["embedding"]
    assert tuple(plain.get_layer("trunk_features").input.shape[1:3]) == (2, 1)  # stride 32
    # DIL without multi-level: stage 6 alone is pooled; the maps are still there.
    single = build_model("sal", **SMALL, multi_level=False)
    assert single.get_layer("trunk_features").input.shape[-1] == 128
    assert "attention" in single.output_names


def test_bad_settings_are_one_line_errors_naming_both_sides():
    with pytest.raises(
        ReIDError,
        match=r"one resolution, but dilation=1 gives stage4 4x2, "
        r"stage5 2x1, stage6 2x1; dilate",
    ):
        build_model("sal", **SMALL, dilation=1)
    with pytest.raises(
        ReIDError,
        match=r"no stage 6 for backbone 'small_convnet'; use one of "
        r"resnet50, mobilenet or stage6: false",
    ):
        build_model("sal", backbone="small_convnet", input_shape=(64, 32, 3))


def test_trains_with_the_papers_three_losses_and_reloads(tmp_path):
    model = build_model("sal", **SMALL, num_classes=4, feature_dim=16)
    x, pids = images(SMALL["input_shape"], batch=8), np.repeat(np.arange(4), 2)
    logs = fit_one_step(
        model,
        x,
        {"embedding": pids, "logits": pids, "attention": pids},
        loss={
            "logits": SoftmaxCrossEntropy(),
            "attention": SelfAttentionConstraint(),
            "embedding": QuadrupletLoss(0.5, 0.2, mining="hard"),
        },
    )
    assert all(np.isfinite(v) for v in logs.values()) and "attention_loss" in logs
    save_and_reload(keras.Model(model.input, model.output["attention"]), tmp_path, x)
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert reloaded.output.shape[1:] == (3, 8, 4)
