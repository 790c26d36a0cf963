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
