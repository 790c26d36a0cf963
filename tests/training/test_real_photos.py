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


@pytest.mark.slow
def test_the_synthetic_to_cuhk03_configs_of_every_adapting_recipe_run_from_a_clone(
    cuhk03_labeled_root, mobilenet_025_weights, tmp_path
):
    # Each recipe's shipped config, shortened to an epoch a stage, from the
    # repository's root as a user runs it: labelled synth-a, CUHK03 unlabelled.
    configs = os.path.join("train_scripts", "configs")
    short = {
        "dien": ("dien_cuhk03_rtda_t3.yaml", ["train.epochs=1"]),
        "embae": (
            "embae_cuhk03.yaml",
            [
                "embedding.train.epochs=1",
                *(f"{stage}.epochs=1" for stage in ("pretrain", "finetune", "finetune_nui")),
                "variants=[cam_nui, bn_adapt]",
                "train.ten_views=false",
            ],
        ),
        "pul": (
            "pul_cuhk03.yaml",
            ["pul.iterations=1", "start.train.train.epochs=1", "finetune.train.epochs=1"],
        ),
    }
    for recipe, (config, overrides) in short.items():
        out = tmp_path / recipe
        args = ["train", recipe, "--config", os.path.join(configs, config), "--out", out]
        code, _, err = run([*args, *overrides], workdir=ROOT, timeout=1800)
        assert code == 0, (recipe, err[-2000:])
        # The target's labels are not used, and each recipe says so once.
        assert err.count("the person ids of its 7239 labelled train images are ignored") == 1
    log = pd.read_csv(tmp_path / "dien" / "log.csv")
    assert 0.0 <= log["domain_accuracy"].iloc[-1] <= 1.0
    embae = pd.read_csv(tmp_path / "embae" / "results.csv")
    assert set(embae["model"]) == {"baseline", "cam_nui", "bn_adapt"}, embae
    # PUL clustered CUHK03's 7,239 unlabelled train crops into at most K = 743 clusters.
    pul = pd.read_csv(tmp_path / "pul" / "results.csv").set_index("model")
    assert 0 < pul.loc["pul_1", "selected"] <= 7239 and pul.loc["pul_1", "clusters_used"] <= 743
    for results in (embae, pul):
        assert results[["rank1", "mAP"]].apply(lambda v: v.between(0, 1)).all(axis=None)
