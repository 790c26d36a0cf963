"""The keras-reid command, run in-process: outputs, one-line errors and exit codes."""

import pytest

from keras_reid.cli import main


def test_datasets_lists_the_registry(capsys):
    assert main(["datasets"]) == 0
    listed = capsys.readouterr().out
    for name in ("market1501", "dukemtmc", "cuhk03", "viper", "ward", "mars", "synth-b"):
        assert name in listed


def test_errors_are_one_line_with_exit_status_2(capsys, tmp_path):
    assert main(["datasets", "market1501:/no/such/folder"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "keras-reid datasets: error: market1501: no folder /no/such/folder (expected the "
        "layout of the official zip: bounding_box_train/, query/, bounding_box_test/)."
    ]
    assert (
        main(
            [
                "train",
                "embedding",
                "--config",
                str(tmp_path / "x.yaml"),
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    assert "config: no file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["datasets", "--sheet"])
    assert exit_info.value.code == 2


def test_datasets_counts_and_sheet_of_the_real_crops(mini_market_root, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert (
        main(["datasets", f"market1501:{mini_market_root}", "--check", "--sheet", str(sheet)]) == 0
    )
    out = capsys.readouterr().out
    assert "market1501   train   16      32        6" in out
    assert "every image decodes" in out
    assert sheet.stat().st_size > 0


def test_synth_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "b"
    args = ["synth", "--preset", "synth-b", "--out", str(out), "--ids", "8", "--size", "64x32"]
    assert main(args) == 0
    assert "synth-b" in capsys.readouterr().out
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_evaluate_a_saved_model_on_the_real_crops(mini_market_root, tmp_path, capsys):
    from keras_reid.models import build_embedding_model

    path = tmp_path / "tiny.keras"
    build_embedding_model(alpha=0.25, input_shape=(64, 32, 3), embedding_dim=8).save(path)
    out = tmp_path / "report"
    code = main(
        [
            "evaluate",
            str(path),
            "--data",
            f"market1501:{mini_market_root}",
            "--tta",
            "flip",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "rank1" in printed and "mAP_nd" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "cmc.png",
        "ranked_lists.png",
        "results.csv",
        "results.md",
    ]
    assert main(["evaluate", str(tmp_path / "none.keras"), "--data", "synth-b"]) == 2
    assert "no model file" in capsys.readouterr().err


def test_train_flags_and_overrides_reach_the_recorded_config(tiny_synth, tmp_path):
    import yaml

    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "train": [
                        {
                            "name": "synth-a",
                            "root": tiny_synth["synth-a"],
                            "ids": 12,
                            "size": [64, 32],
                        }
                    ]
                },
                "model": {"backbone": "small_convnet", "input_shape": [64, 32, 3]},
                "batches": {"p": 4, "k": 2},
                "schedule": {"decay_start_epoch": 1, "decay_end_epoch": 2},
                "train": {"epochs": 1, "verbose": 0},
            }
        )
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "embedding",
                "--config",
                str(config),
                "--out",
                str(out),
                "--mixed-precision",
                "schedule.base_lr=3e-4",
                "model.embedding_dim=8",
            ]
        )
        == 0
    )
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert recorded["train"]["mixed_precision"] is True
    assert recorded["schedule"]["base_lr"] == 3e-4
    assert recorded["model"]["embedding_dim"] == 8
    assert (out / "model.keras").is_file()


def test_train_flags_reach_embae_stage1(tmp_path, monkeypatch):
    from keras_reid.training import RECIPES

    received = {}
    monkeypatch.setitem(
        RECIPES._items, "embae", lambda config, out, resume: received.update(config)
    )
    config = tmp_path / "embae.yaml"
    config.write_text("embedding: {train: {epochs: 1}}\n")
    argv = ["train", "embae", "--config", str(config), "--out", str(tmp_path / "run")]
    assert main([*argv, "--mixed-precision", "--distribute", "mirrored"]) == 0
    assert received["embedding"]["train"] == {
        "epochs": 1,
        "mixed_precision": True,
        "distribute": "mirrored",
    }
    assert "train" not in received
