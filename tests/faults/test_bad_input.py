"""Bad input and hostile file systems, met through the installed console script.

Each case must end with one line on stderr naming the value or file and what
to do, a non-zero exit, and nothing half-written. The commands of a test run
in parallel (each costs a TensorFlow import).
"""

import json
import os
import subprocess
import sys

import pytest
import yaml
from console import finish, run, start
from helpers import TINY_TRUNK

from tests.faults.damage import unprivileged
from tests.faults.filesystems import tmpfs

TINY_TRAIN = {
    "model": {**TINY_TRUNK, "input_shape": [64, 32, 3], "embedding_dim": 16},
    "batches": {"p": 4, "k": 2},
    "schedule": {"base_lr": 1e-3, "decay_start_epoch": 1, "decay_end_epoch": 2},
    "train": {"epochs": 1, "verbose": 0},
}


@pytest.fixture
def tiny_config(tiny_synth, tmp_path):
    config = {
        "data": {"train": [{"name": "synth-a", "root": tiny_synth["synth-a"], "ids": 12}]},
        **TINY_TRAIN,
    }
    config["data"]["train"][0]["size"] = [64, 32]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def one_error_line(err, command):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"keras-reid {command}: error: "), err
    return lines[0]


def test_config_errors_are_one_line_and_write_no_run_folder(tiny_config, tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(tiny_config.read_bytes() + "# caf\xe9\n".encode("latin-1"))
    listed = tmp_path / "listed.yaml"
    listed.write_text(yaml.safe_dump({"base": ["tiny.yaml"]}))
    cases = {
        "train.epochs=abc": "config: train.epochs must be an integer. Received: train.epochs='abc'",
        "train.epochs=1.5": "config: train.epochs must be an integer. Received: train.epochs=1.5",
        "schedule.base_lr=fast": "Received: base_lr='fast'",
        "model.input_shape=64x": "model.input_shape='64x'",
        "model=5": "config: section model must be a mapping of keys",
        str(latin): f"is not UTF-8 text (line {tiny_config.read_text().count(chr(10)) + 1}, "
        "byte 0xe9); save it as UTF-8.",
        str(listed): "base must be the path of one config (base: other.yaml)",
    }
    runs = {}
    for index, case in enumerate(cases):
        config, extra = (case, []) if case.endswith(".yaml") else (tiny_config, [case])
        out = tmp_path / f"run{index}"
        args = ["train", "embedding", "--config", config, "--out", out, *extra]
        stderr = "pipe" if index % 2 else tmp_path / f"err{index}.txt"
        runs[case] = (start(args, stderr=stderr), out)
    for case, (popen, out) in runs.items():
        code, _, err = finish(popen)
        assert code == 2, (case, err)
        assert cases[case] in one_error_line(err, "train"), case
        assert not out.exists(), case  # the corrected rerun is not blocked


def test_a_diverged_run_stops_and_saves_no_model(tiny_config, tmp_path):
    # schedule.base_lr=1e30 once gave a model of NaNs, a logged loss of 0.6931 and exit 0.
    out = tmp_path / "run"
    code, _, err = run(
        ["train", "embedding", "--config", tiny_config, "--out", out, "schedule.base_lr=1e30"],
        stderr=tmp_path / "err.txt",
    )
    assert code == 2
    line = one_error_line(err, "train")
    assert "training diverged: the loss became nan at epoch 1, step 2" in line
    assert "last good checkpoint: none written yet" in line
    assert not (out / "model.keras").exists() and not (out / "backup").exists()


def synth_args(out, seed=0):
    return ["synth", "--preset", "synth-a", "--out", out, "--ids", "8", "--size", "64x32"] + [
        "--seed",
        seed,
    ]


@pytest.mark.slow
def test_concurrent_synth_runs_never_replace_each_other(tmp_path):
    out = tmp_path / "synth"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".synth.tmp-{dead.pid}-killed"  # a killed run's leftover
    stale.mkdir()
    first, second = start(synth_args(out, 0)), start(synth_args(out, 1))
    results = [finish(first), finish(second)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    winner = [seed for seed, (code, _, _) in enumerate(results) if code == 0][0]
    loser_err = [err for code, _, err in results if code == 2][0]
    line = one_error_line(loser_err, "synth")
    assert "written by another process meanwhile; it was kept" in line or (
        "exists and is not empty" in line
    )
    assert json.loads((out / "synthreid.json").read_text())["seed"] == winner
    assert sorted(os.listdir(tmp_path)) == ["synth"]  # no temporary left, the stale one gone


@pytest.fixture
def read_only_folder(tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=1m", "a read-only tmpfs") as mount:
        yield mount


def test_read_only_and_forbidden_folders_are_one_line_errors(
    read_only_folder, tiny_config, tmp_path
):
    forbidden = tmp_path / "forbidden"
    forbidden.mkdir()
    probe = forbidden / "probe"
    probe.write_text("x")
    probe.chmod(0)
    forbidden.chmod(0o555)
    prefix = unprivileged(probe)
    runs = [
        ("synth", start(synth_args(read_only_folder / "s")), "Read-only file system"),
        (
            "train",
            start(["train", "embedding", "--config", tiny_config, "--out", read_only_folder / "r"]),
            "Read-only file system",
        ),
    ]
    if prefix is not None:
        runs.append(
            ("synth", start(synth_args(forbidden / "s"), prefix=prefix), "Permission denied")
        )
    for command, popen, expected in runs:
        code, _, err = finish(popen)
        assert code == 2, err
        line = one_error_line(err, command)
        assert expected in line and "choose" in line
    assert os.listdir(read_only_folder) == []
    assert os.listdir(forbidden) == ["probe"]
    if prefix is None:
        pytest.skip("ran as root without a way to drop CAP_DAC_OVERRIDE: permission case not run")
