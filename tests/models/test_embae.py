"""The EmbAE autoencoder and inference models: shapes, copies, freezing, .keras round trips."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_reid.errors import ReIDError
from keras_reid.models import build_embedding_model
from keras_reid.models.embae import (
    adapt_embedding_statistics,
    build_embae_inference_model,
    build_embae_model,
    copy_stage1_head,
    embae_hyperparameters,
    set_trainable,
    with_nuisance_groups,
)

FEATURES = 256  # MobileNet alpha 0.25


@pytest.fixture(scope="module")
def stage1():
    keras.utils.set_random_seed(0)
    return build_embedding_model(alpha=0.25, input_shape=(64, 32, 3), embedding_dim=16)


def small_ae(groups=1):
    return build_embae_model(FEATURES, embedding_dim=16, nui_dim=8, groups=groups, hidden=1024)


def inputs(n=6, groups=1, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "features": rng.uniform(0, 6, (n, FEATURES)).astype("float32"),
        "group": (np.arange(n) % groups).astype("int32"),
    }


def save_and_reload(model, directory, x):
    """Save, reload without custom_objects, and compare every named output."""
    path = directory / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    expected, got = model.predict(x, verbose=0), reloaded.predict(x, verbose=0)
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-6)
    return reloaded


def weights_of(model, names):
    return {name: [w.copy() for w in model.get_layer(name).get_weights()] for name in names}


def test_shapes_and_named_outputs():
    model = small_ae(groups=3)
    out = model(inputs(groups=3))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "embedding": (6, 16),
        "nuisance": (6, 8),
        "reconstruction": (6, FEATURES),
    }
    assert embae_hyperparameters(model) == {
        "feature_dim": FEATURES,
        "embedding_dim": 16,
        "nui_dim": 8,
        "groups": 3,
        "hidden": 1024,
        "decoder_hidden": 1024,
        "head_order": "bn_relu",
    }
    with pytest.raises(ReIDError, match="groups must be a positive integer"):
        build_embae_model(FEATURES, groups=0)


def test_f_emb_is_the_stage1_head(stage1):
    model = small_ae()
    copy_stage1_head(stage1, model)
    images = np.random.default_rng(0).uniform(0, 255, (4, 64, 32, 3)).astype("float32")
    trunk = keras.Model(stage1.inputs, stage1.get_layer("trunk_features").output)
    features = trunk.predict(images, verbose=0)
    z_id = model.predict({"features": features, "group": np.zeros(4, "int32")}, verbose=0)
    np.testing.assert_allclose(
        z_id["embedding"], stage1.predict(images, verbose=0)["embedding"], rtol=1e-5, atol=1e-5
    )


def test_copy_refuses_another_feature_size(stage1):
    model = build_embae_model(1024, embedding_dim=16, nui_dim=8)
    with pytest.raises(ReIDError, match="feature_dim': 256.*feature_dim': 1024"):
        copy_stage1_head(stage1, model)


@pytest.mark.parametrize(
    "flags, trained",
    [
        ({"emb": False, "nui": True, "dec": True}, {"nuisance", "decoder", "reconstruction"}),
        ({"emb": True, "nui": False, "dec": True}, {"embedding", "decoder", "reconstruction"}),
        ({"emb": False, "nui": True, "dec": False}, {"nuisance"}),
        (
            {"emb": True, "nui": True, "dec": True},
            {"embedding", "nuisance", "decoder", "reconstruction"},
        ),
    ],
)
def test_set_trainable_chooses_the_trained_parts(flags, trained):
    model = small_ae(groups=2)
    set_trainable(model, **flags)
    prefixes = {w.path.split("/")[0].split("_")[0] for w in model.trainable_weights}
    assert prefixes == {name.split("_")[0] for name in trained}


def test_frozen_parts_are_bit_identical_after_fit():
    model = small_ae(groups=2)
    set_trainable(model, emb=False, nui=True, dec=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss={"reconstruction": "mse"})
    frozen = weights_of(model, ("embedding_fc1", "embedding_bn", "embedding"))
    trained = weights_of(model, ("nuisance_fc1", "decoder_fc1"))
    x = inputs(32, groups=2)
    model.fit(x, {"reconstruction": x["features"]}, batch_size=16, epochs=1, verbose=0)
    for name, values in frozen.items():
        for before, after in zip(values, model.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(before, after)  # BN moving statistics included
    for name, values in trained.items():
        assert not np.allclose(values[0], model.get_layer(name).get_weights()[0])


def test_with_nuisance_groups_adds_groups_and_copies_the_rest():
    model = small_ae(groups=2)
    wider = with_nuisance_groups(model, 5)
    assert embae_hyperparameters(wider)["groups"] == 5
    for name in ("embedding_fc1", "embedding_bn", "embedding", "decoder_fc1", "reconstruction"):
        pairs = zip(
            model.get_layer(name).get_weights(), wider.get_layer(name).get_weights(), strict=True
        )
        for a, b in pairs:
            np.testing.assert_array_equal(a, b)
    for name in ("nuisance_fc1", "nuisance"):
        np.testing.assert_array_equal(
            wider.get_layer(name).kernel.numpy()[:2], model.get_layer(name).kernel.numpy()
        )
    # Old groups route as before; the new ones are fresh weights.
    x = inputs(4, groups=2)
    np.testing.assert_allclose(
        wider.predict(x, verbose=0)["nuisance"], model.predict(x, verbose=0)["nuisance"], atol=1e-5
    )
    new_kernel = wider.get_layer("nuisance").kernel.numpy()
    assert not np.allclose(new_kernel[2], new_kernel[0])

    reset = with_nuisance_groups(model, 1, reset=True)
    assert embae_hyperparameters(reset)["groups"] == 1
    assert not np.allclose(
        reset.get_layer("nuisance_fc1").kernel.numpy()[0],
        model.get_layer("nuisance_fc1").kernel.numpy()[0],
    )
    np.testing.assert_array_equal(
        reset.get_layer("embedding").get_weights()[0], model.get_layer("embedding").get_weights()[0]
    )


def test_autoencoder_save_and_reload(tmp_path):
    model = small_ae(groups=3)
    reloaded = save_and_reload(model, tmp_path, inputs(groups=3))
    assert embae_hyperparameters(reloaded)["groups"] == 3


def test_inference_model_is_trunk_plus_heads_and_round_trips(stage1, tmp_path):
    model = small_ae(groups=3)
    copy_stage1_head(stage1, model)
    inference = build_embae_inference_model(stage1, model)
    assert set(inference.output_names) == {"embedding", "nuisance"}
    images = np.random.default_rng(1).uniform(0, 255, (4, 64, 32, 3)).astype("float32")
    groups = np.array([0, 1, 2, 1], "int32")
    trunk = keras.Model(stage1.inputs, stage1.get_layer("trunk_features").output)
    expected = model.predict(
        {"features": trunk.predict(images, verbose=0), "group": groups}, verbose=0
    )
    got = inference.predict({"images": images, "group": groups}, verbose=0)
    for name in ("embedding", "nuisance"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5)
    save_and_reload(inference, tmp_path, {"images": images, "group": groups})

    with pytest.raises(ReIDError, match="gives 256 features but the autoencoder expects 1024"):
        build_embae_inference_model(stage1, build_embae_model(1024))


def test_saved_models_load_after_import_keras_reid_alone(stage1, tmp_path):
    """A fresh process that only imports keras_reid loads both models (no custom_objects)."""
    model = small_ae(groups=2)
    model.save(tmp_path / "ae.keras")
    build_embae_inference_model(stage1, model).save(tmp_path / "inference.keras")
    code = (
        "import keras, keras_reid\n"
        f"for name in ('ae', 'inference'):\n"
        f"    keras.models.load_model({str(tmp_path)!r} + f'/{{name}}.keras')\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]


def test_paper_head_order_carries_through_autoencoder_and_inference_model():
    """f_emb and f_nui take the stage-1 head's order; the inference model keeps it."""
    keras.utils.set_random_seed(0)
    paper = build_embedding_model(
        "small_convnet", input_shape=(64, 32, 3), embedding_dim=16, head_order="relu_bn"
    )
    model = build_embae_model(256, embedding_dim=16, nui_dim=8, groups=2, head_order="relu_bn")
    for head in ("embedding", "nuisance"):
        # ReLU feeds the BatchNorm: the paper's "dense 1024 ReLU, then batch normalisation".
        node = model.get_layer(f"{head}_bn")._inbound_nodes[0]
        assert node.input_tensors[0]._keras_history.operation.name == f"{head}_relu"
    assert embae_hyperparameters(model)["head_order"] == "relu_bn"
    copy_stage1_head(paper, model)  # same order: accepted
    images = np.random.default_rng(1).uniform(0, 255, (4, 64, 32, 3)).astype("float32")
    groups = np.array([0, 1, 1, 0], "int32")
    inference = build_embae_inference_model(paper, model)
    got = inference.predict({"images": images, "group": groups}, verbose=0)
    np.testing.assert_allclose(
        got["embedding"], paper.predict(images, verbose=0)["embedding"], rtol=1e-4, atol=1e-5
    )
    trunk = keras.Model(paper.inputs, paper.get_layer("trunk_features").output)
    expected = model.predict(
        {"features": trunk.predict(images, verbose=0), "group": groups}, verbose=0
    )
    np.testing.assert_allclose(got["nuisance"], expected["nuisance"], rtol=1e-4, atol=1e-5)
    copy = with_nuisance_groups(model, 3)
    assert embae_hyperparameters(copy)["head_order"] == "relu_bn"

    trinet_order = build_embae_model(256, embedding_dim=16, nui_dim=8)
    with pytest.raises(ReIDError, match="'head_order': 'relu_bn'.*'head_order': 'bn_relu'"):
        copy_stage1_head(paper, trinet_order)


@pytest.mark.parametrize("order", ["bn_relu", "relu_bn"])
def test_bn_adapt_changes_only_the_embedding_batchnorm_statistics(order):
    """The control sets f_emb's BN moving mean/variance to the target's, exactly; nothing else."""
    keras.utils.set_random_seed(0)
    model = build_embae_model(32, embedding_dim=4, nui_dim=4, groups=2, hidden=16, head_order=order)
    before = {w.path: keras.ops.convert_to_numpy(w.value).copy() for w in model.weights}
    features = np.random.default_rng(0).normal(0.5, 2.0, (50, 2, 32)).astype("float32")
    adapt_embedding_statistics(model, features)

    # The BatchNorm's input by hand: every image and view, fc1 (then ReLU in the paper's order).
    w1, b1 = model.get_layer("embedding_fc1").get_weights()
    rows = features.reshape(100, 32).astype("float64")
    hidden = rows @ w1 + b1
    if order == "relu_bn":
        hidden = np.maximum(hidden, 0.0)
    expected = {
        "embedding_bn/moving_mean": hidden.mean(axis=0),
        "embedding_bn/moving_variance": ((hidden - hidden.mean(axis=0)) ** 2).mean(axis=0),
    }
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight.value)
        if weight.path in expected:
            np.testing.assert_allclose(value, expected[weight.path], rtol=1e-4, atol=1e-5)
            assert not np.allclose(value, before[weight.path])
        else:
            np.testing.assert_array_equal(value, before[weight.path], err_msg=weight.path)
    assert set(expected) <= {w.path for w in model.weights}
