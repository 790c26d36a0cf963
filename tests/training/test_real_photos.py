"""The shipped CUHK03 configs train on the real crops from a clone (slow: ~3 min on 2 cores)."""

import os

import pandas as pd
import pytest
from console import run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_two_epochs_of_msml_on_cuhk03_score_far_above_chance(
    cuhk03_labeled_root, mobilenet_025_weights, tmp_path
):
    # The config's own relative paths, from the repository's root, as a user runs it.
    config = os.path.join("train_scripts", "configs", "msml_cuhk03_trihard.yaml")
    out = tmp_path / "run"
    code, _, err = run(
        ["train", "msml", "--config", config, "--out", out, "train.epochs=2"],
        workdir=ROOT,
        timeout=1800,
    )
    assert code == 0, err[-2000:]
    report = tmp_path / "report"
    code, _, err = run(
        [
            "evaluate",
            out / "model.keras",
            "--data",
            f"cuhk03_folders:{cuhk03_labeled_root}",
            "--out",
            report,
        ],
        timeout=600,
    )
    assert code == 0, err[-2000:]
    scores = pd.read_csv(report / "results.csv").iloc[0]
    # 100 gallery people, one drawn image each: chance Rank-1 is 0.01.
    assert scores["protocol"] == "cuhk03" and scores["num_query"] == 451
    assert scores["rank1"] > 0.05, scores
