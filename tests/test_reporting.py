"""keras-reid evaluate's library path on the real Market-1501 crops and a MARS-layout tree."""

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import assert_records_versions

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError
from keras_reid.evaluation import reports as reporting
from keras_reid.evaluation.evaluator import evaluate_model
from keras_reid.evaluation.metrics import evaluate
from keras_reid.evaluation.metrics.evaluate import rank_protocol
from keras_reid.evaluation.plots import ranked_lists
from keras_reid.evaluation.reports import collect_runs, runs_table
from keras_reid.models import build_embedding_model
from keras_reid.serving.model_io import load_keras_model
from tests.data.fixtures import make_mars


def test_untrained_model_evaluates_the_real_crops_end_to_end(mini_market_root, tmp_path):
    market = load_dataset("market1501", mini_market_root)
    model = build_embedding_model(alpha=0.25, input_shape=(64, 32, 3), embedding_dim=16)
    out = tmp_path / "report"
    row = evaluate_model(model, market, tta="flip", out=str(out), progress=False)
    # 30 of the 32 queries have a match on another camera (the fixture's README).
    assert int(row["num_query"].iloc[0]) == 32
    assert int(row["num_valid"].iloc[0]) == 30
    for column in ("rank1", "rank5", "mAP", "mINP", "rank1_nd", "mAP_nd"):
        assert 0.0 <= float(row[column].iloc[0]) <= 1.0
    assert row["rank1"].iloc[0] <= row["rank5"].iloc[0] <= row["rank10"].iloc[0]
    umask = os.umask(0)
    os.umask(umask)
    for name in ("results.csv", "results.md", "cmc.png", "ranked_lists.png"):
        assert (out / name).stat().st_size > 0
        # Written through temporary files, yet readable like any file the user writes.
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask
    written = pd.read_csv(out / "results.csv")
    np.testing.assert_allclose(written["mAP"], row["mAP"])
    assert (out / "results.md").read_text().startswith("| dataset | tta | rank1")


def test_video_report_draws_the_tracklets_the_protocol_scores(tmp_path, monkeypatch):
    mars = load_dataset("mars", make_mars(str(tmp_path / "mars")))
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(len(mars.gallery), 8)).astype(np.float32)
    # The query's frames are gallery frames (MARS's gallery holds the query tracklets).
    rows_of = {path: i for i, path in enumerate(mars.gallery.path)}
    query = gallery[[rows_of[path] for path in mars.query.path]]
    row = evaluate(query, gallery, mars.query, mars.gallery, protocol="video", normalize=True)
    drawn = {}
    monkeypatch.setattr(reporting, "plot_cmc", lambda curves, *a, **k: drawn.update(cmc=curves))
    monkeypatch.setattr(
        reporting, "plot_ranked_lists", lambda *args, **kwargs: drawn.update(ranked=args)
    )
    ranking = rank_protocol(
        query, gallery, mars.query, mars.gallery, protocol="video", normalize=True
    )
    reporting.write_report(row, ranking, mars.name, str(tmp_path / "report"))
    dist, q_tracks, g_tracks, _ = drawn["ranked"]
    # 2 query tracklets (5 frames) against 6 gallery tracklets (12 frames), as the protocol ranks.
    assert (len(mars.query), len(mars.gallery)) == (5, 12)
    assert dist.shape == (2, 6) and len(q_tracks) == 2 and len(g_tracks) == 6
    # Each drawn as its middle frame: 0002C1T0002 has frames F001-F003.
    assert os.path.basename(q_tracks.path[0]) == "0002C1T0002F002.jpg"
    shown = ranked_lists(dist, q_tracks.pid, g_tracks.pid, q_tracks.camid, g_tracks.camid, top_k=6)
    assert np.mean([r.average_precision for r in shown]) == pytest.approx(row["mAP"].iloc[0])
    for r in shown:
        # The query's own tracklet: nearest, grey, no rank.
        assert g_tracks.tracklet[r.gallery[0]] == q_tracks.tracklet[r.query]
        assert r.ignored[0] and r.ranks[0] == 0
    assert drawn["cmc"]["market rule"][0] == pytest.approx(row["rank1"].iloc[0])
    assert drawn["cmc"]["-nd (other cameras only)"][0] == pytest.approx(row["rank1_nd"].iloc[0])


def test_keras_reid_evaluate_writes_a_video_report(tmp_path):
    """The console script on a MARS-layout tree: exit 0, the four report files."""
    root = make_mars(str(tmp_path / "mars"))
    model = tmp_path / "model.keras"
    build_embedding_model(alpha=0.25, input_shape=(64, 32, 3), embedding_dim=8).save(model)
    out = tmp_path / "report"
    command = [shutil.which("keras-reid") or "keras-reid", "evaluate", str(model)]
    command += ["--data", f"mars:{root}", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert " video " in done.stdout  # the protocol column of the printed table
    for name in ("results.csv", "results.md", "cmc.png", "ranked_lists.png"):
        assert (out / name).stat().st_size > 0
    assert sorted(os.listdir(out)) == ["cmc.png", "ranked_lists.png", "results.csv", "results.md"]
    assert_records_versions(pd.read_csv(out / "results.csv"), (out / "results.md").read_text())


def test_load_keras_model_refuses_wrong_files(tmp_path):
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("hello")
    with pytest.raises(ReIDError, match="is not a Keras model file"):
        load_keras_model(not_a_model)
    with pytest.raises(ReIDError, match="no model file"):
        load_keras_model(tmp_path / "missing.keras")
    import keras

    inputs = keras.Input((4,))
    plain = keras.Model(inputs, {"logits": keras.layers.Dense(2, name="logits")(inputs)})
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(ReIDError, match="has no 'embedding' output"):
        load_keras_model(tmp_path / "plain.keras")


def _finished_run(folder, data, rows):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"data": data}))
    lines = ["model,rank1,rank1_nd,mAP,mAP_nd"] + [
        f"{model},{r1},{r1nd},{m},{mnd}" for model, r1, r1nd, m, mnd in rows
    ]
    (folder / "results.csv").write_text("\n".join(lines) + "\n")
    return str(folder)


def test_runs_table_gives_mean_std_and_change_over_the_baseline(tmp_path):
    data = {"sources": ["synth-a"], "target": {"name": "synth-b", "root": "/x"}}
    runs = [
        _finished_run(
            tmp_path / "s0",
            data,
            [("baseline", 0.1, 0.2, 0.1, 0.2), ("cam_nui", 0.2, 0.3, 0.1, 0.4)],
        ),
        _finished_run(
            tmp_path / "s1",
            data,
            [("baseline", 0.3, 0.2, 0.1, 0.2), ("cam_nui", 0.4, 0.5, 0.3, 0.2)],
        ),
        _finished_run(
            tmp_path / "multi",
            {"sources": ["dukemtmc:/d", {"name": "cuhk03"}], "target": "market1501:/m"},
            [("baseline", 0.5, 0.5, 0.5, 0.5)],
        ),
    ]
    frame = collect_runs(runs)
    assert list(frame["setting"].unique()) == [
        "synth-a -> synth-b",
        "dukemtmc + cuhk03 -> market1501",
    ]
    text = runs_table(frame)
    # Seeds s0, s1: baseline rank1 mean 0.2, sample std 0.1414; cam_nui rank1 mean 0.3 (+0.1).
    assert "### synth-a -> synth-b (2 runs)" in text
    assert "| baseline | 0.200 ± 0.141 | 0.200 ± 0.000 |" in text
    assert (
        "| cam_nui | 0.300 ± 0.141 (+0.100) | 0.400 ± 0.141 (+0.200) | 0.200 ± 0.141 (+0.100) |"
        in text
    )
    assert "### dukemtmc + cuhk03 -> market1501 (1 run)" in text
    assert "| baseline | 0.500 | 0.500 | 0.500 | 0.500 |" in text


def test_a_run_on_two_roots_of_one_loader_names_each_root(tmp_path):
    # Once "market1501 + market1501 -> market1501".
    sources = ["market1501:/d/A", {"name": "market1501", "root": "/d/B"}]
    data = {"sources": sources, "target": "market1501:/d/C"}
    run = _finished_run(tmp_path / "run", data, [("baseline", 0.1, 0.2, 0.1, 0.2)])
    assert collect_runs([run])["setting"].tolist() == [
        "market1501:A + market1501:B -> market1501:C"
    ]


def test_collect_runs_refuses_unfinished_runs(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(ReIDError, match="run: no results.csv; give finished run folders"):
        collect_runs([str(tmp_path / "run")])
    bad = _finished_run(tmp_path / "bad", {"sources": ["a"]}, [])
    (tmp_path / "bad" / "results.csv").write_text("model,rank1\nbaseline,0.1\n")
    with pytest.raises(ReIDError, match="no column\\(s\\) rank1_nd, mAP, mAP_nd"):
        collect_runs([bad])


def test_evaluation_refuses_non_finite_embeddings(tiny_synth):
    import keras

    market = load_dataset("market1501", tiny_synth["synth-b"])
    images = keras.Input((32, 16, 3), name="images")
    dense = keras.layers.Dense(2, name="embedding")
    model = keras.Model(images, {"embedding": dense(keras.layers.GlobalAveragePooling2D()(images))})
    # Finite weights whose outputs overflow float32 (mean RGB ~100 * 1e37 * 3 > 3.4e38).
    dense.set_weights([np.full((3, 2), 1e37, "float32"), np.zeros(2, "float32")])
    count = len(market.query)
    with pytest.raises(ReIDError, match=rf"for {count} of {count} market1501 query images"):
        evaluate_model(model, market, progress=False)
    with pytest.raises(ReIDError, match=r"Received: batch_size=0"):
        evaluate_model(model, market, batch_size=0)


def test_load_keras_model_says_what_the_file_is_in_one_whole_line(tmp_path):
    import json
    import zipfile

    import keras

    images = keras.Input((8, 4, 3))
    flat = keras.layers.Flatten()(images)
    keras.Model(images, {"embedding": keras.layers.Dense(2, name="embedding")(flat)}).save(
        tmp_path / "good.keras"
    )
    (tmp_path / "good.keras").rename(tmp_path / "model.zip")
    with pytest.raises(ReIDError, match=r"is a .keras archive under another name.*model.keras"):
        load_keras_model(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "photos.keras", "w") as archive:
        archive.writestr("photo.jpg", b"\xff\xd8")
    with pytest.raises(ReIDError, match="a zip archive without the config.json"):
        load_keras_model(tmp_path / "photos.keras")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ReIDError, match="notes.txt exists but is not a Keras model file"):
        load_keras_model(tmp_path / "notes.txt")
    # A class this installation lacks: Keras' own explanation is long (> 200 characters)
    # and must reach the user whole, on one line.
    config = {"module": "my_project", "class_name": "ReIDNet", "config": {"name": "reid"}}
    with zipfile.ZipFile(tmp_path / "custom.keras", "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": keras.__version__}))
    with pytest.raises(Exception) as raised:
        keras.models.load_model(tmp_path / "custom.keras")
    reason = " ".join(str(raised.value).split())
    assert len(reason) > 200
    with pytest.raises(ReIDError) as refused:
        load_keras_model(tmp_path / "custom.keras")
    message = str(refused.value)
    assert "\n" not in message and f"{type(raised.value).__name__}: {reason}" in message
    assert "exists but is not a loadable Keras model file" in message
