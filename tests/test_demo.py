"""The demo's whole path on tiny domains (the real runs are timed in the README)."""

import logging
import os

import pandas as pd
import pytest
from helpers import assert_records_versions

from keras_reid import demo
from keras_reid.config import load_config
from keras_reid.training.embae import VARIANTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_embae_and_writes_the_papers_table(tmp_path, monkeypatch, capsys, caplog):
    real_config = demo.demo_config

    def one_epoch(quick=False, seed=0, verbose=None):
        config = real_config(quick, seed, verbose=0)
        config["embedding"]["model"]["embedding_dim"] = 16
        config["embedding"]["batches"].update(p=4, k=2)
        config["embedding"]["train"].update(epochs=1)
        config["autoencoder"] = {"nui_dim": 8, "decoder_hidden": 32}
        for stage in ("pretrain", "finetune_nui", "finetune"):
            config[stage]["epochs"] = 1
        return config

    monkeypatch.setattr(demo, "demo_config", one_epoch)
    results = demo.run_demo(out=str(tmp_path), quick=True, ids=12)
    printed = capsys.readouterr().out
    for step in ("[1/3]", "[2/3]", "[3/3]"):
        assert step in printed
    assert list(results["model"]) == ["baseline", *VARIANTS]
    written = pd.read_csv(tmp_path / "results.csv")
    markdown = (tmp_path / "results.md").read_text()
    assert_records_versions(written, markdown)
    assert "Computed with " in printed.split("[3/3]")[1]
    written = written.iloc[:, :5]
    assert list(written.columns) == ["model", "rank1", "rank1_nd", "mAP", "mAP_nd"]
    assert list(written["model"]) == ["baseline", *VARIANTS]
    assert ((written.iloc[:, 1:] >= 0) & (written.iloc[:, 1:] <= 1)).all().all()
    # The paper's form: each variant's change over the baseline in brackets.
    change = written.loc[1, "rank1"] - written.loc[0, "rank1"]
    assert f"| all | {written.loc[1, 'rank1']:.3f} ({change:+.3f}) |" in markdown
    for name in ("results.png", "synthreid_domains.png"):
        assert (tmp_path / name).stat().st_size > 0
    # A second run reuses every finished stage instead of training again
    # (progress goes to the log, which the CLI shows on stderr).
    with caplog.at_level(logging.INFO, logger="keras_reid.training"):
        again = demo.run_demo(out=str(tmp_path), quick=True, ids=12)
    assert "reusing" in caplog.text and "stage 3: autoencoder pre-training" not in caplog.text
    pd.testing.assert_frame_equal(again, results)


def test_demo_config_is_the_synthreid_train_script_config():
    recorded = load_config(os.path.join(ROOT, "train_scripts", "configs", "embae_synth.yaml"))
    recorded.pop("data")
    assert demo.demo_config(verbose=2) == recorded


def test_quick_demo_shortens_stage1_only():
    full, quick = demo.demo_config(), demo.demo_config(quick=True)
    assert quick["embedding"]["train"]["epochs"] < full["embedding"]["train"]["epochs"]
    assert (
        quick["embedding"]["schedule"]["decay_end_epoch"] == quick["embedding"]["train"]["epochs"]
    )
    for stage in ("pretrain", "finetune_nui", "finetune"):
        assert quick[stage] == full[stage]


@pytest.mark.parametrize("quick", [False, True])
def test_demo_seed_reaches_every_stage(quick):
    config = demo.demo_config(quick, seed=7)
    assert config["train"]["seed"] == 7 and config["embedding"]["train"]["seed"] == 7
