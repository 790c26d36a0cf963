"""``keras-reid train embae --resume`` on a finished run whose files were damaged.

An autoencoder stage is a few dense layers trained on cached features, in
seconds to minutes: a finished one whose model.keras or inference.keras does
not load whole, or whose groups.json is not the stage's θ_nui groups, is
trained again, with one warning line naming the file. Stage 1 (hours on real
data, and the features every later stage uses) is not: its damaged model.keras
is refused in one line naming the checkpoint that holds its weights.
"""

import json
import shutil

import keras
import pandas as pd
import pytest
import yaml
from console import run

from keras_reid.training.embae import train_embae
from tests.faults.damage import damage_file
from tests.training.test_embae import tiny_config


@pytest.fixture(scope="module")
def finished(tiny_synth, tmp_path_factory):
    """A finished tiny run of one variant (fix_nui), with inference models: (config, folder)."""
    folder = tmp_path_factory.mktemp("embae")
    config = tiny_config(tiny_synth, variants=["fix_nui"])
    config["train"]["export_inference"] = True
    path = folder / "embae.yaml"
    path.write_text(yaml.safe_dump(config))
    train_embae(config, str(folder / "run"))
    return path, folder / "run"


def resume(finished, tmp_path, damaged, kind):
    """Copy the finished run, damage one of its files, resume it: (out, code, stderr)."""
    config, first = finished
    out = tmp_path / "run"
    shutil.copytree(first, out)
    damage_file(out / damaged, kind)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.keras")}
    args = ["train", "embae", "--config", config, "--out", out, "--resume"]
    code, _, err = run(args, stderr=tmp_path / "err.txt")
    rewritten = sorted(p for p, stamp in stamps.items() if p.stat().st_mtime_ns != stamp)
    return out, code, err, rewritten


# the damaged file -> the stage folder trained again
REBUILT = {
    "fix_nui/inference.keras": "fix_nui",
    "fix_nui/groups.json": "fix_nui",
    "pretrain_common/model.keras": "pretrain_common",
}


@pytest.mark.parametrize("damaged", list(REBUILT))
def test_a_damaged_finished_stage_is_trained_again_with_one_warning(finished, tmp_path, damaged):
    out, code, err, rewritten = resume(finished, tmp_path, damaged, "truncated")
    assert code == 0, err
    stage = out / REBUILT[damaged]
    [warning] = [line for line in err.splitlines() if " is damaged (" in line]
    assert warning.startswith(f"EmbAE: {out / damaged} is damaged ("), err
    assert warning.endswith(f"; training the stage in {stage} again."), err
    # That stage alone is written again, whole; the others are reused as they were.
    assert rewritten == sorted(stage.glob("*.keras"))
    for path in rewritten:
        keras.models.load_model(path)
    common = {"nui": "common", "groups": ["common"]}  # fix_nui and its pre-training's θ_nui
    assert json.loads((stage / "groups.json").read_text()) == common
    assert len(pd.read_csv(stage / "log.csv")) == 1  # the stage's one epoch, logged once


def test_a_damaged_stage1_model_is_refused_in_one_line(finished, tmp_path):
    model = "embedding/model.keras"
    out, code, err, rewritten = resume(finished, tmp_path, model, "bit_flipped")
    assert code == 2
    [line] = err.strip().splitlines()
    checkpoint = out / "embedding" / "checkpoints" / "epoch_0001.keras"  # its one epoch
    assert line.startswith(f"keras-reid train: error: {out / model} is damaged (")
    assert "CRC-32" in line
    assert line.endswith(
        f"; the run's last checkpoint {checkpoint} holds the same weights: copy it onto "
        f"{out / model}, or train again in a new --out."
    )
    assert rewritten == []
