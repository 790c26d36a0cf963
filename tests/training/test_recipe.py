"""The shared training path: config sections -> model, losses, optimizer, schedule, batches."""

import json

import numpy as np
import pytest
import yaml
from console import run
from helpers import outputs_in_a_fresh_process

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError
from keras_reid.training.recipe import build_losses, check_config, train


def spec(roots, preset):
    return {"name": preset, "root": roots[preset], "ids": 12, "size": [64, 32]}


def msml_config(roots, **changes):
    """MSML's recipe at a CPU size: two SynthReID domains merged, softmax + MSML."""
    config = {
        "data": {"train": [spec(roots, "synth-a"), spec(roots, "synth-b")]},
        "model": {
            "name": "msml",
            "backbone": "small_convnet",
            "input_shape": [64, 32, 3],
            "feature_dim": 16,
        },
        "batches": {"kind": "mixed", "p": 4, "k": 2},
        "losses": {
            "logits": {"name": "softmax"},
            "embedding": {"name": "msml", "margin": 0.3, "weight": 0.5},
        },
        "optimizer": {"name": "adam"},
        "schedule": {"name": "piecewise", "boundaries": [1], "values": [1e-3, 1e-4]},
        "train": {"epochs": 1, "verbose": 0},
    }
    for section, values in changes.items():
        config[section] = {**config.get(section, {}), **values}
    return config


def test_train_msml_through_the_console_script(tiny_synth, tmp_path):
    config, out = tmp_path / "msml.yaml", tmp_path / "run"
    config.write_text(yaml.safe_dump(msml_config(tiny_synth)))
    code, _, err = run(["train", "msml", "--config", config, "--out", out])
    assert code == 0, err
    # The class map: each (dataset, pid) of the train tables once, by dataset then pid.
    expected = [
        [name, int(pid)]
        for name in ("synth-a", "synth-b")
        for pid in sorted(load_dataset(**spec(tiny_synth, name)).train.pid.unique())
    ]
    classes = json.loads((out / "classes.json").read_text())
    assert classes["classes"] == expected and classes["num_classes"] == len(expected) == 12
    # A fresh process with keras_reid imported, no custom_objects.
    outputs = outputs_in_a_fresh_process(out / "model.keras", (64, 32, 3))
    assert outputs["logits"][0] == (12,) and outputs["embedding"][0] == (16,)
    assert sorted(outputs) == ["embedding", "logits"]
    assert abs(outputs["embedding"][1] - 1.0) < 1e-4  # l2-normalised
    # Both losses were trained, with their weights.
    log = (out / "log.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "logits_loss", "embedding_loss"} <= set(log)


def test_a_classification_only_run_trains_the_feature_through_the_classifier(tiny_synth, tmp_path):
    # The MSML table's Cls row: a loss on logits only; the embedding output
    # still exists (for inference) and gets no loss, no metric and no labels.
    config = msml_config(tiny_synth)
    config["losses"] = {"logits": {"name": "softmax"}}
    model = train(config, str(tmp_path / "run"))
    assert int(model.optimizer.iterations.numpy()) > 0
    initial = train(msml_config(tiny_synth, train={"epochs": 0}), str(tmp_path / "init"))
    fc = [m.get_layer("embedding_fc").kernel.numpy() for m in (model, initial)]
    assert np.abs(fc[0] - fc[1]).max() > 1e-4  # the softmax gradient reached the feature
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()[0].split(",")
    assert "loss" in log and not [c for c in log if c.startswith("embedding")]


def test_a_cached_stream_is_decoded_once_per_fresh_run(tiny_synth, tmp_path, caplog):
    # The check before the run folder is written builds the stream the fit uses.
    config = msml_config(tiny_synth, batches={"cache": True})
    with caplog.at_level("INFO", logger="keras_reid.data"):
        train(config, str(tmp_path / "run"))
    cached = [r for r in caplog.records if r.getMessage().startswith("cached ")]
    assert len(cached) == 1, [r.getMessage() for r in cached]


def test_zero_epochs_write_the_initialised_model(tiny_synth, tmp_path):
    config = msml_config(tiny_synth, train={"epochs": 0})
    model = train(config, str(tmp_path / "run"))
    assert (tmp_path / "run" / "model.keras").is_file()
    assert int(model.optimizer.iterations.numpy()) == 0


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"losses": {"attention": {"name": "softmax"}}},
            "losses.attention: the model has no output 'attention' (outputs: embedding",
        ),
        ({"model": {"num_classes": 5}}, "model.num_classes is filled in from the data"),
        ({"batches": {"kind": "cross"}}, "batches.kind must be one of pk, mixed"),
        ({"batches": {"p": 13}}, "fewer than P=13"),
        ({"losses": {"embedding": {"name": "msml", "weight": -1}}}, "weight must be a number"),
        (
            {"schedule": {"boundaries": [5, 2], "values": [1e-3, 1e-4, 1e-5]}},
            "boundaries",
        ),
        ({"optimizer": {"lr_multipliers": {"trunkk": 0.1}}}, "trunkk"),
        ({"optimizer": {"name": "adagrad"}}, "unknown optimizer 'adagrad'"),
    ],
)
def test_bad_sections_are_one_line_errors_naming_the_value(tiny_synth, changes, message):
    with pytest.raises(ReIDError) as error:
        check_config(msml_config(tiny_synth, **changes))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_output_without_a_loss_is_named():
    embedding = {"embedding": {"name": "batch_hard"}}
    with pytest.raises(ReIDError, match="output.s. logits have no loss; add losses.logits"):
        build_losses({"losses": embedding}, ["embedding", "logits"])
    losses, weights, metrics = build_losses(
        {"losses": {**embedding, "logits": {"name": "softmax", "weight": 2}}},
        ["embedding", "logits"],
    )
    assert weights == {"embedding": 1.0, "logits": 2.0}
    assert set(metrics) == {"embedding"}  # triplet monitoring beside the metric loss only
    assert type(losses["logits"]).__name__ == "SoftmaxCrossEntropy"
