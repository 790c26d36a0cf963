"""The embedding recipe end to end on tiny SynthReID data (a few steps each)."""

import json
import math
import os
import re

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import TINY_TRUNK

from keras_reid.errors import ReIDError
from keras_reid.training.embedding import train_embedding
from keras_reid.training.runner import StopOnNaN, TrainOptions, fit
from tests import console


def tiny_config(root, epochs=1, **train):
    return {
        "data": {"train": [{"name": "synth-a", "root": root, "ids": 12, "size": [64, 32]}]},
        "model": {**TINY_TRUNK, "input_shape": [64, 32, 3], "embedding_dim": 16},
        "losses": {"embedding": {"name": "batch_hard", "margin": "soft"}},
        "batches": {"p": 4, "k": 2},
        "schedule": {"base_lr": 1e-3, "decay_start_epoch": 1, "decay_end_epoch": 2},
        "train": {"epochs": epochs, "verbose": 0, "checkpoint_every": 1, **train},
    }


def test_run_folder_logs_checkpoints_and_refusal(tiny_synth, tmp_path):
    config = tiny_config(tiny_synth["synth-a"])
    out = tmp_path / "run"
    model = train_embedding(config, str(out))
    # The resolved config is recorded: the recipe's defaults filled in.
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert recorded == {
        **config,
        "model": {"name": "trinet", **config["model"]},
        "optimizer": {"name": "adam"},
        "schedule": {"name": "exponential_after", **config["schedule"]},
    }
    assert json.loads((out / "classes.json").read_text())["num_classes"] == 6
    log = pd.read_csv(out / "log.csv")
    assert list(log.epoch) == [0]
    # The in-batch figures are logged beside the loss.
    for column in (
        "loss",
        "mean_positive_distance",
        "mean_negative_distance",
        "active_triplet_fraction",
    ):
        assert math.isfinite(log[column].iloc[0])
    assert os.listdir(out / "tensorboard")
    reloaded = keras.models.load_model(out / "model.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0)["embedding"],
        model.predict(x, verbose=0)["embedding"],
        atol=1e-5,
    )
    with pytest.raises(ReIDError, match="not empty; pass --resume"):
        train_embedding(config, str(out))


def test_resume_continues_after_an_interruption(tiny_synth, tmp_path, monkeypatch):
    config = tiny_config(tiny_synth["synth-a"], epochs=3)
    out = tmp_path / "run"

    def interrupt(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(StopOnNaN, "on_epoch_begin", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_embedding(config, str(out))
    monkeypatch.undo()
    train_embedding(config, str(out), resume=True)
    # Epochs 0 and 1 ran before the interruption; the resumed run only ran epoch 2.
    assert list(pd.read_csv(out / "log.csv").epoch) == [0, 1, 2]


def test_a_run_of_zero_epochs_writes_a_model_that_loads_without_a_warning(tiny_synth, tmp_path):
    root = tiny_synth["synth-a"]
    out = tmp_path / "run"
    model = train_embedding(tiny_config(root, epochs=0), str(out))
    assert int(model.optimizer.iterations.numpy()) == 0  # not one step taken
    # Loading it in a fresh process, as a user would, says nothing on stderr.
    code, stdout, stderr = console.run(
        ["evaluate", out / "model.keras", "--data", f"market1501:{root}"]
    )
    assert code == 0 and stderr == "", stderr
    assert "mAP" in stdout


def test_unknown_config_keys_are_errors(tiny_synth, tmp_path):
    config = tiny_config(tiny_synth["synth-a"])
    config["model"]["alhpa"] = 0.5
    with pytest.raises(ReIDError, match=r"model\.alhpa"):
        train_embedding(config, str(tmp_path / "a"))
    config = tiny_config(tiny_synth["synth-a"])
    config["optimiser"] = {}
    with pytest.raises(ReIDError, match="unknown section.*optimiser"):
        train_embedding(config, str(tmp_path / "b"))
    config = tiny_config(tiny_synth["synth-a"])
    config["losses"] = {"embedding": {"name": "batch_hard", "margn": 0.3}}
    with pytest.raises(ReIDError, match="margn"):
        train_embedding(config, str(tmp_path / "c"))


def test_impossible_p_is_refused_with_the_numbers(tiny_synth, tmp_path):
    config = tiny_config(tiny_synth["synth-a"])
    config["batches"]["p"] = 50
    with pytest.raises(ReIDError, match="50"):
        train_embedding(config, str(tmp_path / "run"))


def test_nan_loss_stops_with_step_and_last_checkpoint(tmp_path):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 2), "float32")
    x[5] = np.nan  # the third batch of two holds the NaN
    (tmp_path / "epoch_0001.keras").write_bytes(b"")
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros((8, 1), "float32"))).batch(2)
    options = TrainOptions(epochs=1, verbose=0)
    with pytest.raises(ReIDError, match=r"epoch 1, step 3; last good checkpoint: .*epoch_0001"):
        fit(model, dataset, 4, options, [StopOnNaN(str(tmp_path))])


def test_a_few_steps_on_the_real_crops_with_the_imagenet_trunk(
    mini_market_root, mobilenet_025_weights, tmp_path
):
    config = {
        "data": {"train": [f"market1501:{mini_market_root}"]},
        "model": {
            "alpha": 0.25,
            "input_shape": [128, 64, 3],
            "embedding_dim": 16,
            "weights": str(mobilenet_025_weights),
        },
        "batches": {"p": 4, "k": 2},
        "schedule": {"base_lr": 1e-4, "decay_start_epoch": 1, "decay_end_epoch": 2},
        "train": {"epochs": 1, "verbose": 0},
    }
    model = train_embedding(config, str(tmp_path / "run"))
    # 32 images / (4*2) = 4 steps ran, every logged figure finite.
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert math.isfinite(log["loss"].iloc[0]) and model.optimizer.iterations.numpy() == 4


def test_the_same_seed_repeats_a_cpu_run(tiny_synth, tmp_path):
    x = np.random.default_rng(1).uniform(0, 255, (3, 64, 32, 3)).astype("float32")
    outputs = []
    for run in ("a", "b"):
        model = train_embedding(tiny_config(tiny_synth["synth-a"], seed=7), str(tmp_path / run))
        outputs.append(model.predict(x, verbose=0)["embedding"])
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=0, atol=1e-6)


def test_mixed_precision_keeps_a_float32_embedding_and_restores_the_policy(tiny_synth, tmp_path):
    config = tiny_config(tiny_synth["synth-a"], mixed_precision=True)
    model = train_embedding(config, str(tmp_path / "run"))
    # On a CPU the compute dtype is bfloat16; the embedding itself stays float32.
    assert model.get_layer("embedding_fc1").dtype_policy.name == "mixed_bfloat16"
    assert model.output["embedding"].dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("model", "backbone", "resnet5", "backbone"),
        ("model", "input_shape", "64x", "model.input_shape='64x'"),
        ("batches", "p", 50, "50"),
        ("losses", "embedding", {"name": "batch_hard", "margin": "x"}, "margin"),
        ("schedule", "base_lr", "fast", "base_lr='fast'"),
        ("train", "epochs", 1.5, "train.epochs must be an integer"),
        ("train", "checkpoint_every", 0, "train.checkpoint_every must be >= 1"),
    ],
)
def test_a_config_error_writes_nothing(tiny_synth, tmp_path, section, key, value, message):
    # A run folder written before the error used to block the corrected rerun.
    config = tiny_config(tiny_synth["synth-a"])
    config[section][key] = value
    out = tmp_path / "run"
    with pytest.raises(ReIDError, match=re.escape(message)):
        train_embedding(config, str(out))
    assert not out.exists()


def test_weights_gone_nan_under_a_finite_loss_stop_the_run(tiny_synth, tmp_path, monkeypatch):
    # BatchNorm statistics never enter the training loss: a run can ruin them
    # and log a finite loss. The epoch-end check stops it before any save.
    from keras_reid.training import state

    original = state.StopOnNaN.on_epoch_end

    def poison_then_check(self, epoch, logs=None):
        if epoch == 1:
            variance = self.model.get_layer("embedding_bn").moving_variance
            variance.assign(np.full(variance.shape, np.nan, "float32"))
        original(self, epoch, logs)

    monkeypatch.setattr(state.StopOnNaN, "on_epoch_end", poison_then_check)
    out = tmp_path / "run"
    pattern = (
        r"weight\(s\) became NaN or infinite \(e.g. .*embedding_bn/moving_variance\) at epoch 2,"
        r" step end; last good checkpoint: .*epoch_0001.keras"
    )
    with pytest.raises(ReIDError, match=pattern):
        train_embedding(tiny_config(tiny_synth["synth-a"], epochs=3), str(out))
    assert sorted(os.listdir(out / "checkpoints")) == ["epoch_0001.keras"]
    assert not (out / "model.keras").exists()
    assert list(pd.read_csv(out / "log.csv").epoch) == [0]
