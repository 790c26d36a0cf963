"""Kill a training run at the worst moments, resume it, and compare with an uninterrupted run.

Each run is the installed console script in a subprocess. The kill is a real
SIGKILL: either from outside, at whatever step the run has reached, or from
inside at a chosen file write (tests/faults/inject/sitecustomize.py), after
the temporary file is written and before it replaces the previous one.
"""

import os
import shutil
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
from helpers import TINY_TRUNK, slow_except

from keras_reid.training.embedding import train_embedding
from tests.faults.damage import FILE_DAMAGE, damage_file
from tests.faults.filesystems import tmpfs

INJECT = str(Path(__file__).parent / "inject")
# 97 train images of 6 ids / (P=4 x K=2) = 12 steps an epoch; backups every 5 steps.
EPOCHS, STEPS, BACKUP_STEPS = 3, 12, 5


def tiny_config(root):
    return {
        "data": {"train": [{"name": "synth-a", "root": str(root), "ids": 12, "size": [64, 32]}]},
        "model": {**TINY_TRUNK, "input_shape": [64, 32, 3], "embedding_dim": 16},
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


# Two moments in the default suite; the other three under -m slow (each a write
# that the same atomic writer makes, at another file).
@pytest.mark.parametrize("moment", slow_except(KILLS, ("mid-epoch", "during a checkpoint")))
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


@pytest.mark.slow
def test_resuming_a_finished_run_says_so_and_does_nothing(setting, tmp_path):
    config, _, _ = setting
    out = tmp_path / "run"
    assert run(train_args(config, out))[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    code, _, err = run(train_args(config, out, resume=True), stderr=tmp_path / "err.txt")
    assert code == 0
    assert "is a finished run (its model.keras exists): nothing to resume" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


@pytest.fixture(scope="module")
def backed_up(setting, tmp_path_factory):
    """A run killed as it wrote its step-25 backup: its newest backup is of step 24 (the end
    of the second epoch), the one before it of step 20 (8 steps into the second epoch)."""
    config, _, _ = setting
    out = tmp_path_factory.mktemp("backed_up") / "run"
    env = {"PYTHONPATH": INJECT, "KERAS_REID_KILL_AT": r"^state-000000025\.npz$:1"}
    code, _, err = finish(start(train_args(config, out), env=env))
    assert code == -signal.SIGKILL, err
    return out


def copy_run(folder, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(folder, out)
    return out, out / "backup" / "state-000000024.npz", out / "backup" / "state-000000020.npz"


def assert_resumed_like_the_uninterrupted_run(out, reference, reference_log):
    assert max_weight_change(out, reference) <= 1e-6
    pd.testing.assert_frame_equal(pd.read_csv(out / "log.csv"), reference_log, rtol=1e-5)
    assert leftovers(out) == []


@pytest.mark.parametrize("kind", slow_except(FILE_DAMAGE, ("truncated",)))
def test_a_damaged_newest_backup_resumes_from_the_one_before(setting, backed_up, tmp_path, kind):
    config, reference, reference_log = setting
    out, newest, previous = copy_run(backed_up, tmp_path)
    damage_file(newest, kind)
    code, _, err = run(train_args(config, out, resume=True), stderr=tmp_path / "err.txt")
    assert code == 0, err
    [warning] = [line for line in err.splitlines() if " is damaged (" in line]
    assert warning.startswith(f"warning: the backup {newest} is damaged ("), err
    assert warning.endswith(
        f"; resuming from the one before it, {previous}, at epoch 2, step 8 (its later steps "
        "are trained again)."
    ), err
    # Step 20's backup carries the running figures of the second epoch's first 8 steps.
    assert_resumed_like_the_uninterrupted_run(out, reference, reference_log)


def test_damaged_backups_are_named_in_one_line_when_none_is_good(setting, backed_up, tmp_path):
    config, _, _ = setting
    out, newest, previous = copy_run(backed_up, tmp_path)
    damage_file(newest, "truncated")
    damage_file(previous, "bit_flipped")
    code, _, err = run(train_args(config, out, resume=True), stderr=tmp_path / "err.txt")
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith(f"keras-reid train: error: the backup {newest} is damaged (")
    assert f"and so is the one before it, {previous} (Bad CRC-32 for file " in line
    assert line.endswith(
        f"delete {out / 'backup'} and resume to restart the run from its first step, or "
        "start it again without --resume in a new --out."
    )
    assert newest.stat().st_size and previous.stat().st_size  # nothing deleted


def test_a_log_saved_with_a_byte_order_mark_resumes(setting, backed_up, tmp_path):
    config, reference, reference_log = setting
    out, _, _ = copy_run(backed_up, tmp_path)
    log = out / "log.csv"
    log.write_bytes(b"\xef\xbb\xbf" + log.read_bytes())  # as Excel saves a CSV
    code, _, err = run(train_args(config, out, resume=True), stderr=tmp_path / "err.txt")
    assert code == 0, err
    # The run resumes at step 24, the start of the last epoch: the rows of the first two are
    # read from the log, not trained again.
    assert_resumed_like_the_uninterrupted_run(out, reference, reference_log)


JUNK_LOGS = {  # the log's lines -> the damaged ones, and the line number to name
    "a non-numeric epoch": (lambda rows: [rows[0], b"zero" + rows[1][1:], rows[2]], 2),
    "binary junk": (lambda rows: [*rows[:2], b"\x00\x89\xfe\xff", rows[2]], 3),
    "a row longer than the header": (lambda rows: [*rows[:2], rows[2] + b",7"], 3),
}


@pytest.mark.parametrize("junk", list(JUNK_LOGS))
def test_a_junk_line_in_the_log_is_named_in_one_line(setting, backed_up, tmp_path, junk):
    config, _, _ = setting
    out, _, _ = copy_run(backed_up, tmp_path)
    log = out / "log.csv"
    change, line_number = JUNK_LOGS[junk]
    rows = log.read_bytes().splitlines()
    assert len(rows) == 3 and rows[1].startswith(b"0,")  # the header, epochs 0 and 1
    log.write_bytes(b"\n".join(change(rows)) + b"\n")
    damaged = log.read_bytes()
    code, _, err = run(train_args(config, out, resume=True), stderr=tmp_path / "err.txt")
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith(f"keras-reid train: error: the run's log {log} ")
    assert f"line {line_number}" in line
    assert line.endswith(
        f"fix that line, or delete {log} to resume without the rows of the epochs before."
    )
    assert log.read_bytes() == damaged


def test_a_damaged_model_of_a_finished_run_is_named_in_one_line(setting, tmp_path):
    config, _, _ = setting
    out = tmp_path / "run"
    shutil.copytree(config.parent / "reference", out)
    damage_file(out / "model.keras", "truncated")
    code, _, err = run(train_args(config, out, resume=True), stderr=tmp_path / "err.txt")
    assert code == 2
    [line] = err.strip().splitlines()
    last = out / "checkpoints" / f"epoch_{EPOCHS:04d}.keras"
    assert line == (
        f"keras-reid train: error: {out / 'model.keras'} is damaged (not a whole .keras zip "
        f"archive: {(out / 'model.keras').stat().st_size} bytes); the run's last checkpoint "
        f"{last} holds the same weights: copy it onto {out / 'model.keras'}, or train again in a "
        "new --out."
    )


@pytest.fixture
def tiny_disk(setting, tmp_path):
    """A tmpfs that holds one backup and not two (a full disk on demand).

    Skipped where mounting is not allowed.
    """
    backup = (setting[0].parent / "reference" / "model.keras").stat().st_size  # with its optimizer
    with tmpfs(tmp_path / "disk", f"size={backup * 8 // 5 // 1024}k", "a small tmpfs") as mount:
        yield mount


@pytest.mark.slow
def test_a_full_disk_stops_with_one_line_and_resumes_after(setting, tiny_disk):
    config, reference, _ = setting
    out = tiny_disk / "run"
    # The first backup fits, the second does not fit beside it (the first is
    # deleted only once the second is whole).
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


@pytest.mark.slow
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
