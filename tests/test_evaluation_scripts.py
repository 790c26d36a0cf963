"""The scripts in evaluation/: the tables of runs and the camera probe."""

import importlib.util
import os

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "evaluation", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_embae_tables_writes_markdown_and_means(tmp_path, capsys):
    for seed, rank1 in (("s0", 0.1), ("s1", 0.3)):
        run = tmp_path / seed
        run.mkdir()
        (run / "config.yaml").write_text("data: {sources: [synth-a], target: synth-b}\n")
        (run / "results.csv").write_text(
            f"model,rank1,rank1_nd,mAP,mAP_nd\nbaseline,{rank1},0.2,0.3,0.4\n"
        )
    main = script("embae_tables").main
    out, csv = tmp_path / "t.md", tmp_path / "t.csv"
    assert (
        main([str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(out), "--csv", str(csv)])
        == 0
    )
    assert "| baseline | 0.200 ± 0.141 |" in out.read_text()
    means = pd.read_csv(csv)
    assert means.loc[0, "runs"] == 2 and np.isclose(means.loc[0, "rank1_mean"], 0.2)
    assert main([str(tmp_path / "missing")]) == 2
    assert "no results.csv" in capsys.readouterr().err


def write_rows(folder, name, rows, ten_offset=0.0):
    """A finished run folder: results.csv and results_ten_views.csv (scores + ten_offset)."""
    run = folder / name
    run.mkdir()
    header = "model,rank1,rank1_nd,mAP,mAP_nd\n"
    flip = "".join(f"{model},{r},{r},{m},{m}\n" for model, r, m in rows)
    ten = "".join(f"{model},{r + ten_offset},{r},{m},{m}\n" for model, r, m in rows)
    (run / "results.csv").write_text(header + flip)
    (run / "results_ten_views.csv").write_text(header + ten)


def test_embae_gap_table_pairs_by_seed_and_compares_settings(tmp_path, capsys):
    module = script("embae_gap_table")
    # Two seeds per setting; Rank-1 chosen so that every figure below is checkable by hand.
    for setting, gain in (("one", 0.10), ("two", 0.04)):
        for seed, base in ((0, 0.40), (1, 0.50)):
            rows = [("baseline", base, 0.2), ("fix_nui", base + 0.05, 0.25)]
            rows += [("cam_nui", base + gain + 0.01 * seed, 0.3), ("bn_adapt", base + 0.02, 0.21)]
            write_rows(tmp_path, f"embae_{setting}_s{seed}", rows, ten_offset=0.01)
            pul = [("start", 0.30, 0.1), ("pul_1", 0.31, 0.12), ("pul_2", 0.33 + 0.01 * seed, 0.15)]
            write_rows(tmp_path, f"pul_{setting}_s{seed}", pul)
    (tmp_path / "embae_one_s2").mkdir()  # unfinished: no results.csv, left out
    frame = module.read_runs(str(tmp_path))
    assert set(frame["seed"]) == {0, 1} and len(frame) == 2 * 2 * 2 * (4 + 2)
    # The last PUL iteration is "fine-tuned PUL", its start "baseline PUL".
    pul = frame[(frame.method == "fine-tuned PUL") & (frame.views == "flip")]
    assert sorted(pul["rank1"]) == [0.33, 0.33, 0.34, 0.34]

    text = module.report(frame)
    # Baseline Rank-1 0.40 and 0.50: mean 0.450, std 0.0707; cam_nui one source
    # 0.50 and 0.61: mean 0.555, change +0.105.
    assert "| baseline | 2 | 0.450 ± 0.071 |" in text
    assert "| cam_nui | 2 | 0.555 ± 0.078 (+0.105) |" in text
    # cam_nui − fix_nui, one source: 0.05 and 0.06, mean +0.055; t(0.975, 1) = 12.706,
    # half-width 12.706 * 0.00707 / sqrt(2) = 0.0635.
    assert "| one | cam_nui > fix_nui | 2 | +0.055 [-0.009, +0.119] |" in text
    assert "| sources | claim a > b | seeds | r=1 a − b [95% CI] | r=1-nd a − b" in text
    # Gains over each method's own start: cam_nui 0.10 and 0.11, PUL 0.03 and 0.04.
    assert "| one | gain: cam_nui > gain: fine-tuned PUL | 2 | +0.070 [+0.070, +0.070] |" in text
    # Ten views: every Rank-1 0.01 higher, so the baseline mean is 0.460.
    assert "| baseline | 2 | 0.460 ± 0.071 |" in text
    # Gains shrink: cam_nui gains one source 0.10, 0.11; two 0.04, 0.05: one − two = 0.06,
    # Welch: var 0.00005 each, se = sqrt(0.00005/2 * 2) = 0.00707, dof 2, t = 4.303.
    a = pd.Series([0.10, 0.11])
    b = pd.Series([0.04, 0.05])
    mean, low, high = module.welch(a, b)
    assert np.isclose(mean, 0.06) and np.isclose(high - mean, 4.303 * 0.00707, atol=2e-4)
    assert "| cam_nui | Rank-1 | +0.105 | +0.045 | +0.060 [+0.030, +0.090] | holds |" in text

    assert "### one source: synth-a -> synth-d, image + mirror" in text
    assert "### two sources: synth-a + synth-c -> CUHK03, image + mirror" in module.report(
        frame, "CUHK03"
    )

    assert module.main([str(tmp_path / "missing")]) == 2
    assert "no folder" in capsys.readouterr().err
