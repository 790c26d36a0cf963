"""Kill a training run at the worst moments, resume it, and compare with an uninterrupted run.

Each run is the installed console script in a subprocess. The kill is a real
SIGKILL: either from outside, at whatever step the run has reached, or from
inside at a chosen file write (tests/faults/inject/sitecustomize.py), after
the temporary file is written and before it replaces the previous one.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from console import finish, run, start

from keras_reid.training.embedding import train_embedding
from tests.faults.filesystems import tmpfs

INJECT = str(Path(__file__).parent / "inject")
# 97 train images of 6 ids / (P=4 x K=2) = 12 steps an epoch; backups every 5 steps.
EPOCHS, STEPS, BACKUP_STEPS = 3, 12, 5


def tiny_config(root):
    return {
        "data": {"train": [{"name": "synth-a", "root": str(root), "ids": 12, "size": [64, 32]}]},
        "model": {"alpha": 0.25, "input_shape": [64, 32, 3], "embedding_dim": 16},
        "batches": {"p": 4, "k": 2},
        "schedule": {"base_lr": 1e-3, "decay_start_epoch": 1, "decay_end_epoch": 3},
        "train": {
            "epochs": EPOCHS,
            "seed": 3,
            "verbose": 0,
            "checkpoint_every": 1,
            "backup_steps": BACKUP_STEPS,
        },
    }


@pytest.fixture(scope="module")
def setting(tiny_synth, tmp_path_factory):
    """The config file and the uninterrupted run's weights and log."""
    folder = tmp_path_factory.mktemp("kill")
    config = tiny_config(tiny_synth["synth-a"])
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    model = train_embedding(config, str(folder / "reference"))
    return path, model.get_weights(), pd.read_csv(folder / "reference" / "log.csv")


def train_args(config, out, resume=False):
    return ["train", "embedding", "--config", config, "--out", out, *(["--resume"] * resume)]


def max_weight_change(out, reference):
    weights = keras.models.load_model(out / "model.keras").get_weights()
    return max(float(np.max(np.abs(a - b))) for a, b in zip(weights, reference, strict=True))


def leftovers(out):
    """Hidden temporaries and backups that a finished run must not leave behind."""
    found = [p for p in out.rglob(".*") if ".tmp-" in p.name]
    return found + ([out / "backup"] if (out / "backup").exists() else [])


def kill_when_backed_up(popen, out, step):
    """SIGKILL ``popen`` as soon as its backup has reached ``step`` (mid-epoch)."""
    state = out / "backup" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and popen.poll() is None:
        try:
            if yaml.safe_load(state.read_text())["step"] >= step:
                popen.send_signal(signal.SIGKILL)
                break
        except (OSError, TypeError, KeyError, yaml.YAMLError):
            pass
        time.sleep(0.05)


# name: the environment of the killed run (KERAS_REID_KILL_AT=REGEX:N; None: killed from outside)
KILLS = {
    "mid-epoch": None,
    "during a mid-epoch backup": r"^state\.json$:2",
    "during an epoch-end backup": r"^state-000000024\.npz$:1",
    "during a checkpoint": r"^epoch_0002\.keras$:1",
    "during the final save": r"^model\.keras$:1",
}


@pytest.mark.parametrize("moment", list(KILLS))
def test_a_killed_run_resumes_to_the_uninterrupted_weights(setting, tmp_path, moment):
    config, reference, reference_log = setting
    out = tmp_path / "run"
    spec = KILLS[moment]
    env = {"PYTHONPATH": INJECT, "KERAS_REID_KILL_AT": spec} if spec else None
    popen = start(train_args(config, out), env=env)
    if spec is None:
        kill_when_backed_up(popen, out, BACKUP_STEPS)
    code, _, err = finish(popen)
    assert code == -signal.SIGKILL, err
    assert not (out / "model.keras").exists()

    code, _, err = run(train_args(config, out, resume=True))
    assert code == 0, err
    change = max_weight_change(out, reference)
    print(f"{moment}: max |dW| against the uninterrupted run = {change:.3g}")
    assert change <= 1e-6
    log = pd.read_csv(out / "log.csv")
    assert list(log.epoch) == list(range(EPOCHS))  # every epoch once
    # The resumed epoch's figures join the steps before and after the kill.
    pd.testing.assert_frame_equal(log, reference_log, rtol=1e-5)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        f"epoch_{e:04d}.keras" for e in range(1, EPOCHS + 1)
    ]
    assert leftovers(out) == []


def test_resuming_a_finished_run_says_so_and_does_nothing(setting, tmp_path):
    config, _, _ = setting
    out = tmp_path / "run"
    assert run(train_args(config, out))[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    code, _, err = run(train_args(config, out, resume=True), stderr=tmp_path / "err.txt")
    assert code == 0
    assert "is a finished run (its model.keras exists): nothing to resume" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_a_damaged_backup_is_named_instead_of_crashing(setting, tmp_path):
    config, _, _ = setting
    out = tmp_path / "run"
    popen = start(train_args(config, out))
    kill_when_backed_up(popen, out, BACKUP_STEPS)
    finish(popen)
    state = yaml.safe_load((out / "backup" / "state.json").read_text())
    (out / "backup" / state["file"]).write_bytes(b"\x89HDF\r\n" + b"\0" * 90)  # 96 bytes
    code, _, err = run(train_args(config, out, resume=True))
    assert code == 2
    [line] = err.strip().splitlines()
    assert f"the backup {out / 'backup' / state['file']} is damaged" in line
    assert f"delete {out / 'backup'} to restart" in line


@pytest.fixture
def tiny_disk(tmp_path):
    """A 12 MB tmpfs (a full disk on demand); skipped where mounting is not allowed."""
    with tmpfs(tmp_path / "disk", "size=12m", "a small tmpfs") as mount:
        yield mount


def test_a_full_disk_stops_with_one_line_and_resumes_after(setting, tiny_disk):
    config, reference, _ = setting
    out = tiny_disk / "run"
    # A backup is 6.4 MB: the first fits, the second does not fit beside it (the
    # first is deleted only once the second is whole).
    code, _, err = run(train_args(config, out))
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith("keras-reid train: error: ") and "No space left on device" in line
    assert [p for p in out.rglob("*") if ".tmp-" in p.name] == []  # no half-written file
    state = yaml.safe_load((out / "backup" / "state.json").read_text())
    assert (out / "backup" / state["file"]).stat().st_size > 0
    subprocess.run(["mount", "-o", "remount,size=200m", str(tiny_disk)], check=True)
    code, _, err = run(train_args(config, out, resume=True))
    assert code == 0, err
    assert max_weight_change(out, reference) <= 1e-6
    assert leftovers(out) == []
    assert os.listdir(out / "checkpoints") != []


def test_a_killed_mirrored_run_of_the_shared_path_resumes(tiny_synth, tmp_path):
    """``--distribute mirrored --resume`` on the shared path (MSML's recipe).

    The backup's optimizer variables are built while restoring, which must
    happen inside the strategy's scope.
    """
    config = {
        "data": {"train": [{"name": "synth-a", "root": str(tiny_synth["synth-a"]), "ids": 12}]},
        "model": {"name": "msml", "backbone": "small_convnet", "input_shape": [64, 32, 3]},
        "batches": {"kind": "pk", "p": 4, "k": 2},
        "losses": {"logits": {"name": "softmax"}, "embedding": {"name": "msml"}},
        "optimizer": {"name": "adam"},
        "schedule": {"name": "piecewise", "boundaries": [1], "values": [1e-3, 1e-4]},
        "train": {"epochs": 2, "seed": 1, "verbose": 0, "backup_steps": BACKUP_STEPS},
    }
    config["data"]["train"][0]["size"] = [64, 32]
    path = tmp_path / "msml.yaml"
    path.write_text(yaml.safe_dump(config))

    def args(out, resume=False):
        command = ["train", "msml", "--config", path, "--out", out, "--distribute", "mirrored"]
        return command + ["--resume"] * resume

    code, _, err = run(args(tmp_path / "reference"))
    assert code == 0, err
    reference = keras.models.load_model(tmp_path / "reference" / "model.keras").get_weights()
    out = tmp_path / "run"
    env = {"PYTHONPATH": INJECT, "KERAS_REID_KILL_AT": r"^state\.json$:2"}
    code, _, err = finish(start(args(out), env=env))
    assert code == -signal.SIGKILL, err
    code, _, err = run(args(out, resume=True))
    assert code == 0, err
    assert max_weight_change(out, reference) <= 1e-6
