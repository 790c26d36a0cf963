"""Comparing finished runs (the MSML paper's Table 1): labels, scores kept per run, tables, CIs."""

import os

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import assert_records_versions
from test_evaluation_scripts import script

from keras_reid.config import load_config
from keras_reid.errors import ReIDError
from keras_reid.evaluation.claims import (
    DIEN_CLAIMS,
    DIEN_CONTROLS,
    DIEN_ORDER,
    MSML_ORDERINGS,
    SAL_ORDER,
    dien_labels,
    run_labels,
    sal_labels,
)
from keras_reid.evaluation.compare import (
    comparison_report,
    differences_table,
    final_log_values,
    log_table,
    method_table,
    paired_differences,
    score_run,
    verdict,
)
from keras_reid.evaluation.evaluator import evaluate_model
from keras_reid.models import build_model
from keras_reid.training.training_data import load_spec

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "train_scripts", "configs")


@pytest.mark.parametrize(
    "name, overrides, expected",
    [
        ("msml_synth_cls.yaml", [], ("small_convnet 64x32", "Cls", 0)),
        ("msml_synth_tri.yaml", ["train.seed=2"], ("small_convnet 64x32", "Tri", 2)),
        ("msml_synth_quad.yaml", [], ("small_convnet 64x32", "Quad", 0)),
        ("msml_synth_trihard.yaml", [], ("small_convnet 64x32", "TriHard", 0)),
        (
            "msml_synth_msml.yaml",
            [
                "model.backbone=mobilenet",
                "model.input_shape=[128, 64, 3]",
                "model.backbone_options={alpha: 0.25}",
            ],
            ("mobilenet-0.25 128x64", "MSML", 0),
        ),
        ("msml_resnext50_quad.yaml", [], ("resnext50 224x224", "Quad", 0)),
    ],
)
def test_run_labels_name_the_paper_rows(name, overrides, expected):
    config = load_config(os.path.join(CONFIGS, name), overrides)
    assert run_labels(config) == expected


SAL_ROWS = {  # SAL Table 1: setting -> what its row ticks, in the table's column order
    "1_soft": "Soft",
    "2_quad": "Quad",
    "3_soft_quad": "Soft+Quad",
    "3t_soft_triplet": "Soft+Triplet",
    "4_soft_dil_multi": "Soft+DIL+Multi",
    "5_soft_quad_dil_multi": "Soft+Quad+DIL+Multi",
    "6_soft_dil_sac_multi": "Soft+DIL+SAC+Multi",
    "7_quad_dil_sac_multi": "Quad+DIL+SAC+Multi",
    "8_full": "Soft+Quad+DIL+SAC+Multi",
}


@pytest.mark.parametrize("row", list(SAL_ROWS))
def test_sal_labels_name_each_shipped_row_as_the_paper_does(row, monkeypatch):
    monkeypatch.setenv("REID_DATA", "/data")
    config = load_config(os.path.join(CONFIGS, f"sal_market_{row}.yaml"), ["train.seed=4"])
    assert sal_labels(config) == ("resnet50 256x128", SAL_ROWS[row], 4)
    assert SAL_ROWS[row] in SAL_ORDER


DIEN_ROWS = {
    "base": "Base",
    "tl": "+TL",
    "cccdtl": "+CCCDTL",
    "dc": "+DC",
    "cccdtl_dc": "+CCCDTL+DC",
    **{f"rtda_t{t}": f"+CCCDTL+DC+RTDA(T={t})" for t in range(1, 6)},
}


@pytest.mark.parametrize("row", list(DIEN_ROWS))
def test_dien_labels_name_each_shipped_row_as_table_one_does(row, monkeypatch):
    monkeypatch.setenv("REID_DATA", "/data")
    for transfer, source in (("duke_market", "dukemtmc"), ("market_duke", "market1501")):
        config = load_config(os.path.join(CONFIGS, f"dien_{transfer}_{row}.yaml"), ["train.seed=2"])
        assert dien_labels(config) == (f"resnet50 256x128 from {source}", DIEN_ROWS[row], 2)
    if row in ("base", "tl", "cccdtl", "dc", "cccdtl_dc", "rtda_t3"):
        config = load_config(os.path.join(CONFIGS, f"dien_synth_ba_{row}.yaml"))
        assert dien_labels(config) == ("mobilenet-0.25 128x64 from synth-b", DIEN_ROWS[row], 0)
    assert DIEN_ROWS[row] in DIEN_ORDER
    assert all(a in DIEN_ORDER and b in DIEN_ORDER for a, b in DIEN_CLAIMS)


def test_dien_controls_are_named_apart_from_the_rows_they_control():
    config = load_config(os.path.join(CONFIGS, "dien_synth_ab_cccdtl_dc.yaml"))
    assert dien_labels(config)[1] == "+CCCDTL+DC"  # trunk 0.1 x 0.1 = 1e-2: no mark
    config["losses"]["embedding"]["triplet_reduction"] = "sum"
    config["train"]["reversal_ramp"] = {"max_scale": 1.0, "gamma": 10}
    assert dien_labels(config)[1] == "+CCCDTL(sum)+DC(ramp)"
    config = load_config(os.path.join(CONFIGS, "dien_synth_ab_cccdtl_dc.yaml"))
    config["optimizer"]["lr_multipliers"]["trunk"] = 0.01  # 0.1 x 0.01
    assert dien_labels(config)[1] == "+CCCDTL+DC (trunk lr 0.001)"
    base = load_config(os.path.join(CONFIGS, "dien_synth_ab_base.yaml"))
    assert dien_labels(base)[1] == "Base"
    base["batches"]["kind"] = "cross_domain"
    assert dien_labels(base)[1] == "Base (cross-domain batches)"
    assert all(a in DIEN_ORDER and b in DIEN_ORDER for a, b in DIEN_CONTROLS)


CUHK03_DIEN_ROWS = {
    **{row: DIEN_ROWS[row] for row in ("base", "tl", "cccdtl", "dc", "cccdtl_dc", "rtda_t3")},
    "control_sum": "+CCCDTL(sum)+DC",
    "control_lam": "+CCCDTL(lam 0.015625)+DC",
    "control_ramp": "+CCCDTL+DC(ramp)",
    "control_trunk": "+CCCDTL+DC (trunk lr 0.001)",
    "control_base_cross": "Base (cross-domain batches)",
}


def test_the_shipped_cuhk03_dien_rows_and_controls_are_one_table():
    labels = {
        row: dien_labels(load_config(os.path.join(CONFIGS, f"dien_cuhk03_{row}.yaml")))
        for row in CUHK03_DIEN_ROWS
    }
    assert {row: setting for row, (_, setting, _) in labels.items()} == CUHK03_DIEN_ROWS
    assert {trunk for trunk, _, _ in labels.values()} == {"mobilenet-0.25 128x64 from synth-a"}
    controlled = {name for pair in DIEN_CONTROLS for name in pair}
    assert controlled <= set(CUHK03_DIEN_ROWS.values())


def test_controls_get_a_table_of_their_own_and_only_when_both_rows_exist():
    values = {
        ("T", method, seed, "d"): (r1, 0.1)
        for method, scores in (("Base", (0.1, 0.2)), ("Base (cross-domain batches)", (0.3, 0.3)))
        for seed, r1 in enumerate(scores)
    }
    pair = [("Base (cross-domain batches)", "Base")]
    text = comparison_report(frame_of(values), DIEN_ORDER, [], ("rank1",), pair)
    # rank1 differences 0.2 and 0.1: mean 0.15; t(0.975, 1) = 12.706, sd 0.0707.
    half = 12.7062 * np.std([0.2, 0.1], ddof=1) / np.sqrt(2)
    assert "Controls (not the paper's claims)" in text
    assert f"| T | Base (cross-domain batches) > Base | 2 | +0.150 [{0.15 - half:+.3f}," in text
    alone = {key: value for key, value in values.items() if key[1] == "Base"}
    assert "Controls" not in comparison_report(frame_of(alone), DIEN_ORDER, [], ("rank1",), pair)


def test_the_log_table_reads_each_runs_last_epoch(tmp_path, caplog):
    runs = []
    for seed, (loss, accuracy) in enumerate(((0.30, 0.90), (0.50, 0.70))):
        run = tmp_path / f"dc_s{seed}"
        run.mkdir()
        config = load_config(os.path.join(CONFIGS, "dien_synth_ab_dc.yaml"), [f"train.seed={seed}"])
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        # Two epochs: only the last counts.
        (run / "log.csv").write_text(
            f"epoch,domain_accuracy,domain_loss,loss\n0,0.5,0.69,3\n1,{accuracy},{loss},2\n"
        )
        runs.append(str(run))
    base = tmp_path / "base_s0"
    base.mkdir()
    config = load_config(os.path.join(CONFIGS, "dien_synth_ab_base.yaml"))
    (base / "config.yaml").write_text(yaml.safe_dump(config))
    (base / "log.csv").write_text("epoch,loss\n0,4\n")
    columns = ("domain_loss", "domain_accuracy")
    frame = final_log_values([*runs, str(base)], columns, dien_labels)
    lines = log_table(frame, columns, DIEN_ORDER).splitlines()
    trunk = "mobilenet-0.25 128x64 from synth-a"
    # By hand: losses 0.3, 0.5 -> 0.400 ± 0.141; accuracies 0.9, 0.7 -> 0.800 ± 0.141.
    assert lines[2] == f"| {trunk} | Base | 1 | – | – |"
    assert lines[3] == f"| {trunk} | +DC | 2 | 0.400 ± 0.141 | 0.800 ± 0.141 |"
    (base / "log.csv").unlink()  # a run folder without its log: a row of –, and a warning
    with caplog.at_level("WARNING", logger="keras_reid.evaluation"):
        frame = final_log_values([str(base)], columns, dien_labels)
    assert frame[list(columns)].isna().all(axis=None)
    assert "base_s0: no training log (log.csv) to read" in caplog.text


def test_run_labels_of_a_metric_loss_alone_and_of_hard_quadruplets():
    config = {"losses": {"embedding": {"name": "quadruplet", "mining": "hard"}}}
    assert run_labels(config)[1] == "QuadHard (no Cls)"


def frame_of(values):
    """Rows (trunk, method, seed, dataset name, rank1, mAP) as score_runs gives them."""
    rows = [
        {
            "run": f"{t}/{m}_s{s}",
            "trunk": t,
            "method": m,
            "seed": s,
            "name": d,
            "rank1": r1,
            "mAP": ap,
        }
        for (t, m, s, d), (r1, ap) in values.items()
    ]
    return pd.DataFrame(rows)


# Two datasets whose per-run means are, for rank1: Cls 0.5, 0.6, 0.7 and
# MSML 0.6, 0.8, 1.0 over seeds 0-2 (paired differences 0.1, 0.2, 0.3).
VALUES = {}
for seed, (cls, msml) in enumerate(((0.5, 0.6), (0.6, 0.8), (0.7, 1.0))):
    for name, shift in (("d1", -0.1), ("d2", 0.1)):
        VALUES["T", "Cls", seed, name] = (cls + shift, 0.2)
        VALUES["T", "MSML", seed, name] = (msml + shift, 0.4 + 0.1 * seed)


def test_method_table_gives_mean_and_std_over_seeds():
    text = method_table(frame_of(VALUES))
    lines = text.splitlines()
    assert lines[0] == (
        "| trunk | method | runs | d1 mAP | d1 r=1 | d2 mAP | d2 r=1 | mean mAP | mean r=1 |"
    )
    # Cls d1 rank1: 0.4, 0.5, 0.6 -> 0.500 ± 0.100; mean over datasets 0.5, 0.6, 0.7.
    assert lines[2] == (
        "| T | Cls | 3 | 0.200 ± 0.000 | 0.500 ± 0.100 | 0.200 ± 0.000 | 0.700 ± 0.100 "
        "| 0.200 ± 0.000 | 0.600 ± 0.100 |"
    )
    assert lines[3].startswith("| T | MSML | 3 | 0.500 ± 0.100 | 0.700 ± 0.200 |")


def test_paired_differences_use_a_student_t_interval():
    table = paired_differences(frame_of(VALUES), [("MSML", "Cls")], "rank1")
    row = table.iloc[0]
    # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t(0.975, 2) = 4.3027
    half = 4.302653 * 0.1 / np.sqrt(3)
    assert row["pairs"] == 3 and np.allclose(row["differences"], [0.1, 0.2, 0.3])
    assert np.isclose(row["mean"], 0.2) and np.isclose(row["low"], 0.2 - half)
    assert np.isclose(row["high"], 0.2 + half)
    assert verdict(row["low"], row["high"]) == "unresolved"  # -0.048 .. 0.448
    # mAP differences 0.2, 0.3, 0.4 -> [0.052, 0.548]: the claim holds; reversed reads so.
    text = differences_table(frame_of(VALUES), [("MSML", "Cls"), ("Cls", "MSML")])
    assert (
        "| T | MSML > Cls | 3 | +0.200 [-0.048, +0.448] | +0.300 [+0.052, +0.548] "
        "| unresolved / holds |" in text
    )
    assert (
        "| T | Cls > MSML | 3 | -0.200 [-0.448, +0.048] | -0.300 [-0.548, -0.052] "
        "| unresolved / reversed |" in text
    )
    # Methods a trunk lacks are left out, not invented.
    assert paired_differences(frame_of(VALUES), MSML_ORDERINGS).empty


@pytest.fixture(scope="module")
def tiny_run(tiny_synth, tmp_path_factory):
    """A run folder with an untrained small model and its config."""
    run = tmp_path_factory.mktemp("runs") / "trihard_s1"
    run.mkdir()
    model = build_model("msml", backbone="small_convnet", input_shape=(64, 32, 3), feature_dim=8)
    model.save(run / "model.keras")
    config = {
        "model": {"name": "msml", "backbone": "small_convnet", "input_shape": [64, 32, 3]},
        "losses": {"logits": {"name": "softmax"}, "embedding": {"name": "batch_hard"}},
        "train": {"seed": 1},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    spec = {"name": "synth-b", "root": tiny_synth["synth-b"], "ids": 12, "size": [64, 32]}
    return run, spec, model


def test_scores_are_computed_once_and_kept_in_the_run(tiny_run):
    run, spec, model = tiny_run
    first = score_run(str(run), [spec])
    expected = evaluate_model(model, load_spec(spec), progress=False)
    assert first.loc[0, "name"] == "synth-b" and first.loc[0, "tta"] == "none"
    assert np.isclose(first.loc[0, "rank1"], expected.loc[0, "rank1"])
    assert np.isclose(first.loc[0, "mAP"], expected.loc[0, "mAP"])
    kept = pd.read_csv(run / "scores.csv")
    assert len(kept) == 1
    assert_records_versions(kept)
    # Kept: without the model the scores still come back, and are not re-added.
    os.rename(run / "model.keras", run / "moved.keras")
    try:
        again = score_run(str(run), [spec])
        assert np.isclose(again.loc[0, "rank1"], first.loc[0, "rank1"])
        assert len(pd.read_csv(run / "scores.csv")) == 1
        # Re-ranked scores are another protocol: not kept yet, so they need the model.
        with pytest.raises(ReIDError, match=r"trihard_s1: no model.keras"):
            score_run(str(run), [spec], rerank=True)
        # A score not kept needs the model: a one-line error naming the run.
        with pytest.raises(ReIDError, match=r"trihard_s1: no model.keras; finish the run"):
            score_run(str(run), [spec], tta="flip")
    finally:
        os.rename(run / "moved.keras", run / "model.keras")
    reranked = score_run(str(run), [spec], rerank=True)
    expected = evaluate_model(model, load_spec(spec), rerank=True, progress=False)
    assert bool(reranked.loc[0, "rerank"]) and len(pd.read_csv(run / "scores.csv")) == 2
    assert np.isclose(reranked.loc[0, "mAP"], expected.loc[0, "mAP"])
    again = score_run(str(run), [spec])  # the plain row is still the plain one
    assert len(again) == 1 and np.isclose(again.loc[0, "mAP"], first.loc[0, "mAP"])


def test_msml_table_script_prints_and_writes_the_table(tiny_run, tmp_path, capsys):
    run, spec, _ = tiny_run
    main = script("msml_table").main
    out, csv = tmp_path / "table.md", tmp_path / "rows.csv"
    code = main(
        [
            str(run),
            "--data",
            yaml.safe_dump(spec, default_flow_style=True).strip(),
            "--out",
            str(out),
            "--csv",
            str(csv),
        ]
    )
    assert code == 0, capsys.readouterr().err
    text = out.read_text()
    assert "| small_convnet 64x32 | TriHard | 1 |" in text
    assert pd.read_csv(csv).loc[0, "seed"] == 1
    assert main([str(tmp_path / "missing"), "--data", "synth-b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("msml_table: error: ")
    assert "missing: no config.yaml" in err


def test_sal_table_script_gives_both_protocols(tiny_run, tmp_path, capsys):
    run, spec, _ = tiny_run
    data = yaml.safe_dump(spec, default_flow_style=True).strip()
    assert script("sal_table").main([str(run), "--data", data, "--both"]) == 0
    text = capsys.readouterr().out
    assert "## Without re-ranking" in text and "## With k-reciprocal re-ranking" in text
    # The tiny run's config: softmax + batch-hard on an msml model read as SAL's defaults.
    assert text.count("| small_convnet 64x32 | Soft+Triplet+DIL+Multi | 1 |") == 2


def test_dien_table_script_gives_the_targets_rank_1_5_10_and_map(tiny_run, capsys):
    run, spec, _ = tiny_run
    data = yaml.safe_dump(spec, default_flow_style=True).strip()
    assert script("dien_table").main([str(run), "--data", data]) == 0
    text = capsys.readouterr().out
    assert "| synth-b r=1 | synth-b r=5 | synth-b r=10 | synth-b mAP |" in text
    scores = pd.read_csv(run / "scores.csv").iloc[0]
    row = next(line for line in text.splitlines() if "| +TL |" in line or "| Base |" in line)
    cells = [cell.strip() for cell in row.split("|")[4:8]]
    assert cells == [f"{scores[s]:.3f}" for s in ("rank1", "rank5", "rank10", "mAP")]
    # The domain classifier's last-epoch figures: the tiny run has none (no domain loss).
    assert "| domain_loss | domain_accuracy |" in text and "| – | – |" in text


def test_two_roots_of_one_loader_are_two_columns_of_the_table(tiny_run, tiny_synth, capsys):
    # Both SynthReID generations read by the market1501 loader: once one column,
    # the mean of the two datasets' scores.
    run, _, model = tiny_run
    specs = [f"market1501:{tiny_synth[preset]}" for preset in ("synth-a", "synth-b")]
    assert script("dien_table").main([str(run), "--data", *specs]) == 0
    text = capsys.readouterr().out
    assert "| market1501:synth-a r=1 |" in text and "| market1501:synth-b mAP |" in text
    row = next(line for line in text.splitlines() if "| Base |" in line)
    cells = [cell.strip() for cell in row.split("|")]
    for spec in specs:
        expected = evaluate_model(model, load_spec(spec), progress=False).loc[0, "rank1"]
        assert f"{expected:.3f}" in cells
