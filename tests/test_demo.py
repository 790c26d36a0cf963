"""The demo's whole path on tiny domains (the real runs are timed in the README)."""

import pytest

from keras_reid import demo


def test_demo_generates_trains_and_scores_the_target(tmp_path, monkeypatch, capsys):
    def one_epoch(quick=False, seed=0):
        config = {section: dict(values) for section, values in demo.EMBEDDING_CONFIG.items()}
        config["batches"].update(p=4, k=2)
        config["train"].update(epochs=1, verbose=0, seed=seed)
        return config

    monkeypatch.setattr(demo, "demo_config", one_epoch)
    row = demo.run_demo(out=str(tmp_path), quick=True, ids=12)
    printed = capsys.readouterr().out
    for step in ("[1/3]", "[2/3]", "[3/3]"):
        assert step in printed
    assert row["dataset"].iloc[0] == "synth-b" and 0.0 <= row["rank1"].iloc[0] <= 1.0
    assert (tmp_path / "synthreid_domains.png").stat().st_size > 0
    assert (tmp_path / "quick" / "evaluation" / "results.csv").is_file()
    # A second run reuses the trained model instead of training again.
    demo.run_demo(out=str(tmp_path), quick=True, ids=12)
    assert "reusing" in capsys.readouterr().out


@pytest.mark.parametrize("quick, epochs", [(True, 12), (False, 40)])
def test_demo_schedules(quick, epochs):
    config = demo.demo_config(quick)
    assert config["train"]["epochs"] == epochs
    assert config["schedule"]["decay_end_epoch"] == epochs
