"""Every model kind and every registered class loads from .keras in a fresh process.

The package's contract (README, "Notebooks / feature extractor"): after ``import keras_reid``,
``keras.models.load_model(path)`` works with no ``custom_objects``. One
fresh interpreter (nothing imported but keras and keras_reid) loads a file of
each model kind plus one model holding every custom layer and compiled with
every custom loss, metric and schedule; it returns the outputs and the
losses it computes, and the keras_reid classes its loaded objects serialise
to. The test compares them with the models saved here, and checks that every
class registered under "keras_reid" was among them.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import set_bn_statistics

import keras_reid  # noqa: F401 - registers the classes the saved files name
from keras_reid.layers import (
    AttentionMap,
    ClassificationHead,
    GradientReversal,
    GroupedDense,
    LoopFusion,
    MultiLevelAttention,
    TopDownAttention,
    TrunkPreprocessing,
)
from keras_reid.losses import (
    BatchHardTripletLoss,
    CrossDomainTripletLoss,
    DomainAccuracy,
    DomainCrossEntropy,
    MarginSampleMiningLoss,
    QuadrupletLoss,
    SelfAttentionConstraint,
    SoftmaxCrossEntropy,
    TripletLoss,
)
from keras_reid.models import build_model
from keras_reid.models.embae import build_embae_inference_model, build_embae_model
from keras_reid.models.embedding import build_embedding_model
from keras_reid.models.resnext import GroupedConv2D
from keras_reid.training.embedding import triplet_metrics
from keras_reid.training.optimizers import build_optimizer
from keras_reid.training.schedules import (
    ExponentialDecayAfter,
    LinearWarmup,
    Piecewise,
    StepDecay,
)

PIDS = np.repeat(np.arange(4), 2)  # P=4 identities x K=2 images
MIXED_PIDS = np.array([0, 0, 1, 1, -1, -1, -1, -1])  # source + unlabelled target

FRESH_PROCESS = r"""
import json, re, sys
import keras
import numpy as np
import keras_reid

job = json.load(open(sys.argv[1]))
data = np.load(job["inputs"])
outputs, report = {}, {"registered": set(), "losses": {}}
for name, keys in job["models"].items():
    model = keras.models.load_model(job["folder"] + f"/{name}.keras")
    inputs = {k: data[f"{name}:{k}"] for k in keys}
    x = inputs if len(keys) > 1 else inputs[keys[0]]
    for key, value in model(x, training=False).items():
        outputs[f"{name}:{key}"] = keras.ops.convert_to_numpy(value)
    text = json.dumps([model.get_config(), model.get_compile_config()])
    report["registered"] |= set(re.findall(r"keras_reid>\w+", text))
    if name in job["evaluate"]:
        y = {k: data[f"{name}:y:{k}"] for k in job["evaluate"][name]}
        report["losses"][name] = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
report["registered"] = sorted(report["registered"])
np.savez(job["outputs"], **outputs)
print(json.dumps(report))
"""


def compile_like_training(model, loss=None, metrics=None):
    """Adam on the TriNet schedule, as :func:`train_embedding` compiles."""
    model.compile(
        optimizer=keras.optimizers.Adam(ExponentialDecayAfter(steps_per_epoch=10)),
        loss=loss or {"embedding": BatchHardTripletLoss("soft")},
        metrics=metrics or {"embedding": triplet_metrics("soft")},
    )
    return model


def every_layer_and_loss():
    """One model holding each custom layer, compiled with each custom loss and metric."""
    keras.utils.set_random_seed(7)  # the same model every run
    images = keras.Input((32, 32, 3), name="images")
    group = keras.Input((), dtype="int32", name="group")
    x = TrunkPreprocessing("caffe", name="preprocessing")(images)
    levels = []
    for index in range(3):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name=f"conv{index}")(x)
        levels.append(x)
    attention = MultiLevelAttention(name="attention")(levels)
    flat = AttentionMap(name="attention_flat")(x)
    x = GroupedConv2D(8, 3, groups=4, padding="same", name="grouped_conv")(x)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    embedding = keras.layers.Dense(8, name="embedding")(keras.layers.Concatenate()([pooled, flat]))
    outputs = {"embedding": embedding, "attention": attention}
    for name in ("triplet", "msml", "quadruplet", "cross_domain"):
        outputs[name] = keras.layers.Identity(name=name)(embedding)
    reversed_features = GradientReversal(scale=0.5)(pooled)
    outputs["logits"] = ClassificationHead(4, dropout=0.1, name="classifier")(reversed_features)
    # DIEN's RTDA: one attention loop on the last map, fused with the plain feature.
    attended = TopDownAttention([4, 2], reduction=2, name="rtda_attention")([x, embedding])
    looped = keras.layers.Dense(8, name="looped")(keras.layers.GlobalAveragePooling2D()(attended))
    outputs["fused"] = LoopFusion(name="rtda_fusion")([embedding, looped])
    # Standardised first (set_bn_statistics below): on the raw pooled features
    # the sigmoid can sit on a flat end, ~0 or ~1 for every sample alike.
    standardised = keras.layers.BatchNormalization(name="domain_bn")(reversed_features)
    outputs["domain"] = keras.layers.Dense(1, activation="sigmoid", name="domain")(standardised)
    outputs["nuisance"] = GroupedDense(4, groups=2, name="nuisance")([pooled, group])
    model = keras.Model({"images": images, "group": group}, outputs, name="every_layer")
    return compile_like_training(
        model,
        loss={
            "embedding": BatchHardTripletLoss("soft"),
            # Arguments away from their defaults, so a lost config entry shows.
            "triplet": TripletLoss(0.7),
            "msml": MarginSampleMiningLoss(0.6),
            "quadruplet": QuadrupletLoss(0.8, 0.4, mining="all"),
            "cross_domain": CrossDomainTripletLoss(0.9, lam=0.25),
            "logits": SoftmaxCrossEntropy(label_smoothing=0.2),
            "attention": SelfAttentionConstraint(),
            "domain": DomainCrossEntropy(from_logits=False),
        },
        metrics={
            "embedding": triplet_metrics("soft"),
            "domain": [DomainAccuracy(from_logits=False)],
        },
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The models, saved; their inputs, outputs and (compiled ones') losses."""
    folder = tmp_path_factory.mktemp("keras_files")
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (8, 64, 32, 3)).astype("float32")
    square = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    groups = (np.arange(8) % 3).astype("int32")

    embedding = build_embedding_model(
        "small_convnet", input_shape=(64, 32, 3), embedding_dim=16, bn_momentum=0.9
    )
    compile_like_training(set_bn_statistics(embedding, small))
    mobilenet = build_embedding_model("mobilenet", alpha=0.25, input_shape=(64, 32, 3))
    set_bn_statistics(mobilenet, small)
    # Per-module rates on a warmed-up piecewise schedule, built so that the
    # file holds the groups' slots: the reload must find its groups alone.
    warmed_up = LinearWarmup(Piecewise(10, [5], [0.1, 0.01]), 10, warmup_epochs=1)
    mobilenet.compile(
        optimizer=build_optimizer(
            mobilenet, warmed_up, "sgd", momentum=0.9, lr_multipliers={"trunk": 0.1}
        ),
        loss={"embedding": BatchHardTripletLoss()},
    )
    mobilenet.optimizer.build(mobilenet.trainable_variables)
    autoencoder = build_embae_model(256, embedding_dim=16, nui_dim=8, groups=3)
    autoencoder.compile(
        optimizer=keras.optimizers.Adam(StepDecay(10, base_lr=1e-3)),
        loss={"reconstruction": "mse"},
    )
    features = rng.normal(size=(8, 256)).astype("float32")
    set_bn_statistics(autoencoder, {"features": features, "group": groups})
    inference = build_embae_inference_model(embedding, autoencoder)
    # The registry's models with a classifier, on trunks whose stages were changed.
    msml = build_model(
        "msml",
        backbone="small_convnet",
        input_shape=(64, 32, 3),
        feature_dim=16,
        num_classes=4,
        backbone_options={"widths": (8, 16), "last_stride": 1},
    )
    set_bn_statistics(msml, small)
    trinet = build_model(
        "trinet",
        backbone="bn_inception",
        input_shape=(64, 32, 3),
        embedding_dim=16,
        num_classes=4,
        backbone_options={"last_stride": 1, "dilation": 2},
    )
    set_bn_statistics(trinet, small)
    sal = build_model(
        "sal",
        backbone="mobilenet",
        input_shape=(64, 32, 3),
        feature_dim=16,
        num_classes=4,
        backbone_options={"alpha": 0.25},
    )
    set_bn_statistics(sal, small)
    every = every_layer_and_loss()
    set_bn_statistics(every, {"images": square, "group": groups % 2})

    cases = {
        "embedding": (embedding, {"images": small}),
        "embedding_mobilenet": (mobilenet, {"images": small}),
        "embae_autoencoder": (autoencoder, {"features": features, "group": groups}),
        "embae_inference": (inference, {"images": small, "group": groups}),
        "msml": (msml, {"images": small}),
        "trinet_logits": (trinet, {"images": small}),
        "sal": (sal, {"images": small}),
        "every_layer": (every, {"images": square, "group": groups % 2}),
    }
    targets = {
        "every_layer": {
            "embedding": PIDS,
            "triplet": PIDS,
            "msml": PIDS,
            "quadruplet": PIDS,
            "cross_domain": MIXED_PIDS,
            "logits": PIDS,
            "attention": PIDS,  # the self-attention constraint ignores its target
            # Outputs without a loss still need a target in Keras 3's evaluate.
            "nuisance": np.zeros((8, 4), "float32"),
            "fused": np.zeros((8, 8), "float32"),
            "domain": MIXED_PIDS,  # source rows 0, target rows (-1) 1
        }
    }
    arrays, outputs, losses = {}, {}, {}
    for name, (model, inputs) in cases.items():
        model.save(folder / f"{name}.keras")
        x = inputs if len(inputs) > 1 else next(iter(inputs.values()))
        for key, value in inputs.items():
            arrays[f"{name}:{key}"] = value
        for key, value in model(x, training=False).items():
            outputs[f"{name}:{key}"] = keras.ops.convert_to_numpy(value)
        if name in targets:
            for key, value in targets[name].items():
                arrays[f"{name}:y:{key}"] = value
            losses[name] = model.evaluate(
                x, targets[name], batch_size=8, verbose=0, return_dict=True
            )
    np.savez(folder / "inputs.npz", **arrays)
    job = {
        "folder": str(folder),
        "inputs": str(folder / "inputs.npz"),
        "outputs": str(folder / "outputs.npz"),
        "models": {name: list(inputs) for name, (_, inputs) in cases.items()},
        "evaluate": {name: list(y) for name, y in targets.items()},
    }
    (folder / "job.json").write_text(json.dumps(job))
    return {"folder": folder, "job": job, "outputs": outputs, "losses": losses}


@pytest.fixture(scope="module")
def reloaded(saved):
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(saved["folder"] / "job.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(saved["job"]["outputs"]) as data:
        outputs = dict(data)
    return {"outputs": outputs, **json.loads(result.stdout.strip().splitlines()[-1])}


def test_every_model_kind_gives_the_same_outputs_after_loading(saved, reloaded):
    assert sorted(reloaded["outputs"]) == sorted(saved["outputs"])
    for key, value in saved["outputs"].items():
        np.testing.assert_allclose(reloaded["outputs"][key], value, rtol=1e-5, atol=1e-5)
        # Not trivially equal: the outputs vary from sample to sample.
        assert np.ptp(value, axis=0).max() > 1e-3, key


def test_compiled_losses_and_metrics_compute_the_same_after_loading(saved, reloaded):
    expected = saved["losses"]["every_layer"]
    got = reloaded["losses"]["every_layer"]
    assert sorted(got) == sorted(expected)
    for output in ("embedding", "triplet", "msml", "quadruplet", "cross_domain", "logits"):
        assert f"{output}_loss" in expected, sorted(expected)
    assert "embedding_active_triplet_fraction" in expected, sorted(expected)
    assert "domain_accuracy" in expected, sorted(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_every_registered_class_was_round_tripped(reloaded):
    registered = sorted(k for k in keras.saving.get_custom_objects() if k.startswith("keras_reid>"))
    missing = sorted(set(registered) - set(reloaded["registered"]))
    assert not missing, (
        f"not covered by a saved model here: {missing}; add them to every_layer_and_loss()"
    )
    assert re.match(r"keras_reid>\w+$", registered[0])
