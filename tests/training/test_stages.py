"""Multi-stage recipes (SAL's two stages): chaining, resuming after stage 1, bad input."""

import os
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from console import finish, run, start
from helpers import outputs_in_a_fresh_process

from keras_reid.errors import ReIDError
from keras_reid.models import build_model
from keras_reid.training.runner import start_from
from keras_reid.training.stages import stage_configs, train_stages

INJECT = str(Path(__file__).parents[1] / "faults" / "inject")


SMALL_SAL = {
    "backbone": "mobilenet",
    "input_shape": [64, 32, 3],
    "feature_dim": 16,
    "backbone_options": {"alpha": 0.25},
}


def sal_config(roots):
    """SAL's two stages at a CPU size: MobileNet-0.25 at 64x32, one SynthReID domain."""
    return {
        "data": {
            "train": [{"name": "synth-a", "root": roots["synth-a"], "ids": 12, "size": [64, 32]}]
        },
        "model": {"name": "sal", **SMALL_SAL},
        "batches": {"kind": "pk", "p": 4, "k": 2},
        "optimizer": {"name": "sgd", "momentum": 0.9},
        "train": {"seed": 5, "verbose": 0},
        "stages": {
            "stage1": {
                "losses": {"logits": {"name": "softmax"}, "attention": {"name": "sac"}},
                "schedule": {"name": "step", "base_lr": 0.01, "step_epochs": 1},
                "train": {"epochs": 1},
            },
            "stage2": {
                "losses": {
                    "logits": {"name": "softmax"},
                    "attention": {"name": "sac"},
                    "embedding": {"name": "quadruplet", "margin1": 0.5, "margin2": 0.2},
                },
                "schedule": {"name": "step", "base_lr": 1.0e-3, "step_epochs": 1},
                "train": {"epochs": 2},
            },
        },
    }


def test_each_stage_is_the_config_with_its_changes_and_starts_from_the_last(tiny_synth, tmp_path):
    stages = dict(stage_configs(sal_config(tiny_synth), str(tmp_path / "run")))
    assert list(stages) == ["stage1", "stage2"]
    one, two = stages["stage1"], stages["stage2"]
    assert "stages" not in one and one["train"] == {"seed": 5, "verbose": 0, "epochs": 1}
    assert "init_from" not in one["train"]
    # Each stage is the config's sections with its own changes, not stage 1's.
    assert sorted(one["losses"]) == ["attention", "logits"]
    assert sorted(two["losses"]) == ["attention", "embedding", "logits"]
    assert two["train"]["init_from"] == str(tmp_path / "run" / "stage1" / "model.keras")
    assert two["schedule"]["base_lr"] == 1.0e-3 and two["optimizer"]["momentum"] == 0.9


@pytest.fixture(scope="module")
def uninterrupted(tiny_synth, tmp_path_factory):
    """The two-stage run through the console script, uninterrupted."""
    folder = tmp_path_factory.mktemp("stages")
    config = folder / "sal.yaml"
    config.write_text(yaml.safe_dump(sal_config(tiny_synth)))
    out = folder / "run"
    code, _, err = run(["train", "sal", "--config", config, "--out", out])
    assert code == 0, err
    return config, out


def weights(path):
    return keras.models.load_model(path, compile=False).get_weights()


def max_change(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


@pytest.mark.slow
def test_two_stages_write_both_runs_and_the_final_model(uninterrupted):
    config, out = uninterrupted
    for stage in ("stage1", "stage2"):
        assert (out / stage / "model.keras").is_file() and (out / stage / "classes.json").is_file()
    assert max_change(weights(out / "model.keras"), weights(out / "stage2" / "model.keras")) == 0
    log1, log2 = ((out / s / "log.csv").read_text().splitlines() for s in ("stage1", "stage2"))
    assert len(log1) == 2 and len(log2) == 3  # header + one row per epoch
    assert "embedding_loss" not in log1[0] and "embedding_loss" in log2[0]
    assert "attention_loss" in log1[0] and "attention_loss" in log2[0]
    # The final model loads in a fresh process without custom_objects.
    outputs = outputs_in_a_fresh_process(out / "model.keras", (64, 32, 3))
    assert {name: shape for name, (shape, _) in outputs.items()} == {
        "attention": (3, 8, 4),
        "embedding": (16,),
        "logits": (6,),
    }


@pytest.mark.slow
def test_killed_in_stage_2_resumes_there_to_the_uninterrupted_weights(uninterrupted, tmp_path):
    config, reference = uninterrupted
    out = tmp_path / "run"
    # Killed at the second epoch-end backup: stage 1's single epoch, then stage 2's first.
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [INJECT, os.environ.get("PYTHONPATH")])),
        "KERAS_REID_KILL_AT": r"^state-\d+\.npz$:2",
    }
    code, _, err = finish(start(["train", "sal", "--config", config, "--out", out], env=env))
    assert code < 0, err
    assert (out / "stage1" / "model.keras").is_file()
    assert not (out / "stage2" / "model.keras").exists()
    stage1_written = (out / "stage1" / "model.keras").stat().st_mtime_ns
    code, _, err = run(["train", "sal", "--config", config, "--out", out, "--resume"])
    assert code == 0, err
    assert (out / "stage1" / "model.keras").stat().st_mtime_ns == stage1_written  # not retrained
    assert max_change(weights(out / "model.keras"), weights(reference / "model.keras")) <= 1e-6


def test_start_from_takes_the_weights_of_the_same_architecture_only(tmp_path):
    def sal(seed):
        keras.utils.set_random_seed(seed)
        return build_model("sal", **SMALL_SAL)

    source, target = sal(1), sal(2)
    source.save(tmp_path / "stage1.keras")
    assert max_change(source.get_weights(), target.get_weights()) > 0
    start_from(target, str(tmp_path / "stage1.keras"))
    assert max_change(source.get_weights(), target.get_weights()) == 0
    other = build_model("msml", backbone="small_convnet", input_shape=(64, 32, 3), feature_dim=16)
    other.save(tmp_path / "other.keras")
    with pytest.raises(ReIDError) as error:
        start_from(target, str(tmp_path / "other.keras"))
    assert "\n" not in str(error.value)
    assert re.search(
        r"other.keras is a 'small_convnet_msml' model \(\d+ weights\), this run builds "
        r"'mobilenet_sal' \(\d+ weights\); they first differ at weight 0: \S+ \(3, 3, 3, 32\) "
        r"there, conv1/kernel \(3, 3, 3, 8\) here",
        str(error.value),
    ), error.value


def test_stage_2_from_another_architecture_is_refused_before_writing(tiny_synth, tmp_path):
    other = build_model("msml", backbone="small_convnet", input_shape=(64, 32, 3), feature_dim=16)
    other.save(tmp_path / "other.keras")
    config = sal_config(tiny_synth)
    config["stages"]["stage2"]["train"]["init_from"] = str(tmp_path / "other.keras")
    # A given init_from is checked before anything is trained or written.
    with pytest.raises(ReIDError, match=r"other.keras is a 'small_convnet_msml' model"):
        train_stages(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "stages, message",
    [
        ([], "stages must be a mapping of stage name -> section changes"),
        ({"stage1": {"lossses": {}}}, "stages.stage1: unknown section(s) lossses"),
        ({"../up": {}}, "stages.../up: a stage name must be a plain folder name"),
    ],
)
def test_bad_stages_sections_are_one_line_errors(tiny_synth, tmp_path, stages, message):
    config = {**sal_config(tiny_synth), "stages": stages}
    with pytest.raises(ReIDError, match=None) as error:
        train_stages(config, str(tmp_path / "run"))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()
