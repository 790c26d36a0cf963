"""The EmbAE recipe: what each stage trains or freezes, groups, batches, and a tiny full run."""

import json
import logging
import os
import re
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import TINY_TRUNK, assert_records_versions

from keras_reid.data.market1501 import read_market_layout
from keras_reid.errors import ReIDError
from keras_reid.evaluation.evaluator import evaluate_model
from keras_reid.evaluation.metrics import evaluate
from keras_reid.evaluation.reports import results_markdown
from keras_reid.models.embae import build_embae_model, with_nuisance_groups
from keras_reid.serving.extract import extract_features
from keras_reid.training.embae import (
    VARIANTS,
    camera_probe,
    feature_batches,
    fit_stage,
    group_indices,
    group_keys,
    runnable_variants,
    train_embae,
)
from keras_reid.training.embae import (
    StageOptions as Stage,
)

# Its module fixtures train or save whole runs: one worker makes them once.
pytestmark = pytest.mark.xdist_group("embae")

FEATURES = 32


def spec(roots, preset):
    return {"name": preset, "root": roots[preset], "ids": 12, "size": [64, 32]}


def tiny_config(roots, **sections):
    config = {
        "data": {"sources": [spec(roots, "synth-a")], "target": spec(roots, "synth-b")},
        "embedding": {
            # small_convnet: the SynthReID configs' trunk, and quick to trace.
            "model": {**TINY_TRUNK, "input_shape": [64, 32, 3], "embedding_dim": 16},
            "batches": {"p": 4, "k": 2},
            "schedule": {"base_lr": 1.0e-3, "decay_start_epoch": 1, "decay_end_epoch": 2},
            "train": {"epochs": 1, "verbose": 0, "checkpoint_every": 1},
        },
        "autoencoder": {"nui_dim": 8, "decoder_hidden": 64},
        "pretrain": {"epochs": 1, "learning_rate": 1.0e-3, "batch_size": 32},
        "finetune": {"epochs": 1, "learning_rate": 1.0e-4, "batch_size": 32},
        "finetune_nui": {"epochs": 1, "learning_rate": 1.0e-3, "batch_size": 32},
        "train": {"verbose": 0, "export_inference": False},
    }
    config.update(sections)
    return config


@pytest.fixture(scope="module")
def run(tiny_synth, tmp_path_factory):
    """One tiny run of every variant: (config, out folder, results)."""
    config = tiny_config(tiny_synth)
    config["train"]["export_inference"] = True
    out = tmp_path_factory.mktemp("embae") / "run"
    return config, out, train_embae(config, str(out))


# ---------------------------------------------------------------------------
# Groups and batches


def camera_table(name, camids):
    return pd.DataFrame(
        {"path": [f"{i}.jpg" for i in range(len(camids))], "pid": 0, "camid": camids}
    ).assign(dataset=name)


def test_group_keys_and_indices():
    tables = {"a": camera_table("a", [2, 0, 2]), "c": camera_table("c", [1, 1, 0])}
    assert group_keys("common", tables) == ["common"]
    assert group_keys("dataset", tables) == ["a", "c"]
    keys = group_keys("camera", tables)
    assert keys == [["a", 0], ["a", 2], ["c", 0], ["c", 1]]
    assert list(group_indices("camera", "c", tables["c"], keys)) == [3, 3, 2]
    assert list(group_indices("dataset", "c", tables["c"], keys=["a", "c"])) == [1, 1, 1]
    assert list(group_indices("common", "c", tables["c"], ["common"])) == [0, 0, 0]
    with pytest.raises(ReIDError, match=r"camera id\(s\) \[5\] have no θ_nui group"):
        group_indices("camera", "a", camera_table("a", [5]), keys)
    with pytest.raises(ReIDError, match="b: 1 image.*camid -1"):
        group_keys("camera", {"b": camera_table("b", [0, -1])})


def test_feature_batches_visit_every_image_once_per_epoch_as_a_random_view():
    count = 40
    features = np.stack(
        [np.arange(count) * 2.0, np.arange(count) * 2.0 + 1.0], axis=1
    )  # view v of image i holds 2i + v
    features = np.repeat(features[:, :, None], 3, axis=2).astype("float32")
    groups = np.arange(count) % 3
    dataset = feature_batches(features, groups, batch_size=8, seed=0)
    epochs = []
    for _ in range(2):
        values = []
        for x, y in dataset:
            np.testing.assert_array_equal(x["features"], y["reconstruction"])
            value = x["features"].numpy()[:, 0].astype(int)
            np.testing.assert_array_equal(x["group"].numpy(), (value // 2) % 3)
            values += list(value)
        epochs.append(values)
        assert sorted(v // 2 for v in values) == list(range(count))
        assert 0 < sum(v % 2 for v in values) < count  # both views drawn
    assert epochs[0] != epochs[1]  # a new order and new views every epoch


def test_cam_nui_needs_camera_ids(caplog):
    def dataset(name, camids):
        return SimpleNamespace(name=name, label=name, train=camera_table(name, camids))

    data = SimpleNamespace(sources=[dataset("a", [0, 1])], target=dataset("nocams", [0, -1, -1]))
    with pytest.raises(ReIDError, match="cam_nui needs camera ids.*2 of the 3 nocams"):
        runnable_variants(["cam_nui"], data)
    with caplog.at_level(logging.WARNING, logger="keras_reid.training"):
        assert runnable_variants(list(VARIANTS), data) == [v for v in VARIANTS if v != "cam_nui"]
    assert "skipping cam_nui" in caplog.text
    # A source without cameras cannot have a θ_nui per camera either.
    data = SimpleNamespace(sources=[dataset("a", [-1, 1])], target=dataset("b", [0, 1]))
    with pytest.raises(ReIDError, match="1 of the 2 a train images"):
        runnable_variants(["cam_nui"], data)
    assert runnable_variants(["all", "fix_nui"], data) == ["all", "fix_nui"]


# ---------------------------------------------------------------------------
# What each stage trains: frozen weights stay bit-identical


PARTS = {
    "emb": ("embedding_fc1", "embedding_bn", "embedding"),
    "nui": ("nuisance_fc1", "nuisance_bn", "nuisance"),
    "dec": ("decoder_fc1", "reconstruction"),
}


def snapshot(model):
    return {
        part: [w.copy() for name in names for w in model.get_layer(name).get_weights()]
        for part, names in PARTS.items()
    }


def changed(before, after):
    return {
        part
        for part in PARTS
        if any(not np.array_equal(a, b) for a, b in zip(before[part], after[part], strict=True))
    }


def random_features(count=64, groups=2, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.uniform(0, 6, (count, 2, FEATURES)).astype("float32")
    return features, (np.arange(count) % groups).astype("int32")


@pytest.mark.parametrize(
    "stage, trained",
    [
        ("pretrain", ("nui", "dec")),
        ("all", ("emb", "nui", "dec")),
        ("fix_nui", ("emb", "dec")),
        ("new_nui: new θ_nui", ("nui",)),
        ("new_nui: θ_emb, θ_dec", ("emb", "dec")),
    ],
)
def test_each_stage_changes_exactly_its_parts(stage, trained):
    keras.utils.set_random_seed(0)
    model = build_embae_model(FEATURES, embedding_dim=8, nui_dim=4, groups=2, hidden=16)
    features, groups = random_features()
    before = snapshot(model)
    fit_stage(model, trained, Stage(2, 1e-2, batch_size=16), features, groups, 0, 0)
    assert changed(before, snapshot(model)) == set(trained)


def test_new_target_groups_leave_the_source_groups_untouched():
    keras.utils.set_random_seed(0)
    source = build_embae_model(FEATURES, embedding_dim=8, nui_dim=4, groups=3, hidden=16)
    model = with_nuisance_groups(source, 5)
    features, _ = random_features()
    target_groups = (3 + np.arange(64) % 2).astype("int32")  # the two new groups only
    old = [model.get_layer(n).kernel.numpy()[:3].copy() for n in ("nuisance_fc1", "nuisance")]
    fit_stage(model, ("nui",), Stage(2, 1e-2, 16), features, target_groups, 0, 0)
    for name, kernel in zip(("nuisance_fc1", "nuisance"), old, strict=True):
        new = model.get_layer(name).kernel.numpy()
        np.testing.assert_array_equal(new[:3], kernel)
        assert not np.allclose(new[3:], with_nuisance_groups(source, 5).get_layer(name).kernel[3:])


# ---------------------------------------------------------------------------
# The recipe end to end


def test_tiny_run_of_every_variant(run, tiny_synth):
    config, out, results = run
    assert list(results.columns) == ["model", "rank1", "rank1_nd", "mAP", "mAP_nd"]
    assert list(results.model) == ["baseline", *VARIANTS]
    assert results[["rank1", "rank1_nd", "mAP", "mAP_nd"]].apply(np.isfinite).all().all()
    written = pd.read_csv(out / "results.csv")
    markdown = (out / "results.md").read_text()
    pd.testing.assert_frame_equal(written[list(results.columns)], results)
    assert_records_versions(written, markdown)
    assert re.search(r"\| cam_nui \| \d\.\d{3} \([+-]\d\.\d{3}\)", markdown)
    assert (out / "results.png").stat().st_size > 0
    assert (out / "embedding" / "model.keras").is_file()
    assert sorted(p.name for p in (out / "cache").iterdir()) == [
        "synth-a_train.npz",
        "synth-b_gallery.npz",
        "synth-b_gallery_ten.npz",
        "synth-b_query.npz",
        "synth-b_query_ten.npz",
        "synth-b_train.npz",
    ]
    ten = pd.read_csv(out / "results_ten_views.csv")
    assert list(ten.model) == ["baseline", *VARIANTS]
    assert (out / "results_ten_views.md").is_file() and (out / "results_ten_views.png").is_file()
    source_cameras = read_market_layout(tiny_synth["synth-a"], "synth-a").train.camid.nunique()
    target_cameras = read_market_layout(tiny_synth["synth-b"], "synth-b").train.camid.nunique()
    expected_groups = {
        "pretrain_common": 1,
        "pretrain_dataset": 1,
        "pretrain_camera": source_cameras,
        "all": 1,
        "fix_nui": 1,
        "new_nui": 1,
        "dataset_nui": 2,
        "cam_nui": source_cameras + target_cameras,
        "bn_adapt": 1,
    }
    for folder, groups in expected_groups.items():
        recorded = json.loads((out / folder / "groups.json").read_text())
        assert len(recorded["groups"]) == groups, folder
        model = keras.models.load_model(out / folder / "model.keras")
        assert model.get_layer("nuisance").groups == groups
        assert ((out / folder / "inference.keras").is_file()) == (folder in VARIANTS)
    assert json.loads((out / "dataset_nui" / "groups.json").read_text())["groups"] == [
        "synth-a",
        "synth-b",
    ]


def test_baseline_is_the_stage1_model_on_images(run, tiny_synth):
    _, out, results = run
    target = read_market_layout(tiny_synth["synth-b"], "synth-b")
    stage1 = keras.models.load_model(out / "embedding" / "model.keras")
    query, gallery = (
        extract_features(stage1, table, tta="flip", progress=False)
        for table in (target.query, target.gallery)
    )
    row = evaluate(query, gallery, target.query, target.gallery, normalize=True).iloc[0]
    baseline = results.set_index("model").loc["baseline"]
    for name in ("rank1", "rank1_nd", "mAP", "mAP_nd"):
        assert baseline[name] == pytest.approx(row[name], abs=1e-6)


def test_ten_view_scores_are_hermans_test_time_augmentation_on_images(run, tiny_synth):
    """results_ten_views: the stage-1 model on images with five crops and their flips."""
    _, out, _ = run
    target = read_market_layout(tiny_synth["synth-b"], "synth-b")
    stage1 = keras.models.load_model(out / "embedding" / "model.keras")
    row = evaluate_model(stage1, target, tta="five-crop-flip", progress=False).iloc[0]
    scored = pd.read_csv(out / "results_ten_views.csv").set_index("model").loc["baseline"]
    for name in ("rank1", "rank1_nd", "mAP", "mAP_nd"):
        assert scored[name] == pytest.approx(row[name], abs=1e-6)


def test_bn_adapt_is_the_stage1_head_with_target_statistics(run):
    """The control row: stage-1 f_emb weights, BN statistics of the target's train features."""
    _, out, _ = run
    stage1 = keras.models.load_model(out / "embedding" / "model.keras")
    control = keras.models.load_model(out / "bn_adapt" / "model.keras")
    for name in ("embedding_fc1", "embedding"):
        for got, want in zip(
            control.get_layer(name).get_weights(), stage1.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(got, want)
    gamma, beta, mean, variance = control.get_layer("embedding_bn").get_weights()
    s_gamma, s_beta, s_mean, _ = stage1.get_layer("embedding_bn").get_weights()
    np.testing.assert_array_equal(gamma, s_gamma)
    np.testing.assert_array_equal(beta, s_beta)
    with np.load(out / "cache" / "synth-b_train.npz") as cache:
        features = cache["features"].reshape(-1, cache["features"].shape[-1])
    w1, b1 = stage1.get_layer("embedding_fc1").get_weights()
    hidden = features.astype("float64") @ w1 + b1  # TriNet's order: the BN reads fc1
    np.testing.assert_allclose(mean, hidden.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(variance, hidden.var(axis=0), rtol=1e-4, atol=1e-5)
    assert not np.allclose(mean, s_mean)


def test_inference_export_gives_the_variants_embedding(run, tiny_synth):
    _, out, _ = run
    inference = keras.models.load_model(out / "cam_nui" / "inference.keras")
    last = len(json.loads((out / "cam_nui" / "groups.json").read_text())["groups"]) - 1
    images = np.random.default_rng(0).uniform(0, 255, (3, 64, 32, 3)).astype("float32")
    got = inference.predict({"images": images, "group": np.array([0, 1, last])}, verbose=0)
    assert got["embedding"].shape == (3, 16) and got["nuisance"].shape == (3, 8)
    # Evaluated on images, the exported model scores what the run scored on
    # cached features (z_id reads no group, so evaluate needs none).
    target = read_market_layout(tiny_synth["synth-b"], "synth-b")
    row = evaluate_model(inference, target, tta="flip", progress=False).iloc[0]
    scored = pd.read_csv(out / "results.csv").set_index("model").loc["cam_nui"]
    for name in ("rank1", "rank1_nd", "mAP", "mAP_nd"):
        assert row[name] == pytest.approx(scored[name], abs=1e-6)
    with pytest.raises(ReIDError, match="'nuisance'.*depends on each image's θ_nui group"):
        extract_features(inference, target.query, output="nuisance", progress=False)


def test_resume_reuses_finished_stages(run):
    config, out, results = run
    stamps = {p: os.stat(p).st_mtime_ns for p in out.glob("*/model.keras")}
    again = train_embae(config, str(out), resume=True)
    assert {p: os.stat(p).st_mtime_ns for p in out.glob("*/model.keras")} == stamps
    pd.testing.assert_frame_equal(again, results)
    with pytest.raises(ReIDError, match="not empty; pass --resume"):
        train_embae(config, str(out))


def test_model_path_skips_stage1_and_shares_the_cache(run, tiny_synth, tmp_path, caplog):
    _, first, results = run
    config = tiny_config(
        tiny_synth,
        variants=["fix_nui"],
        cache={"dir": str(first / "cache")},
    )
    config["embedding"]["model_path"] = str(first / "embedding" / "model.keras")
    with caplog.at_level(logging.INFO, logger="keras_reid.training"):
        again = train_embae(config, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "embedding").exists()
    # 4 flip + 2 ten-view files
    assert "building" not in caplog.text and caplog.text.count("reusing") == 6
    assert list(again.model) == ["baseline", "fix_nui"]
    assert again.iloc[0].equals(results.iloc[0])


def test_a_checkpoint_of_another_size_is_refused(run, tiny_synth, tmp_path):
    _, first, _ = run
    config = tiny_config(tiny_synth)
    config["embedding"]["model"] = {"alpha": 0.5, "input_shape": [96, 48, 3]}  # MobileNet
    config["embedding"]["model_path"] = str(first / "embedding" / "model.keras")
    with pytest.raises(ReIDError, match=r"input \(64, 32, 3\) and 16 .* \(96, 48, 3\) and 512"):
        train_embae(config, str(tmp_path / "run"))


def test_a_model_path_that_is_no_model_or_a_stage1_typo_writes_nothing(tiny_synth, tmp_path):
    text = tmp_path / "notes.keras"
    text.write_text("not a model\n")
    config = tiny_config(tiny_synth)
    config["embedding"]["model_path"] = str(text)
    out = tmp_path / "run"
    with pytest.raises(ReIDError, match=re.escape(str(text))):
        train_embae(config, str(out))
    assert not out.exists()
    config = tiny_config(tiny_synth)
    config["embedding"]["batches"]["p"] = 50  # more than the 6 train ids
    with pytest.raises(ReIDError, match="fewer than P=50"):
        train_embae(config, str(out))
    assert not out.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"variants": ["all", "cam"]}, "unknown variant.*cam; expected"),
        ({"autoencoder": {"feature_dim": 12}}, "autoencoder.feature_dim.*stage-1 model"),
        ({"optimiser": {}}, "unknown section.*optimiser"),
        ({"pretrain": {"epochs": 1}}, "pretrain.*learning_rate"),
        ({"finetune": None}, "section finetune is missing"),
    ],
)
def test_config_errors(tiny_synth, tmp_path, change, message):
    config = tiny_config(tiny_synth, **change)
    with pytest.raises(ReIDError, match=message):
        train_embae(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_results_markdown_shows_the_change_over_the_baseline():
    results = pd.DataFrame(
        [
            {"model": "baseline", "rank1": 0.578, "rank1_nd": 0.6, "mAP": 0.3, "mAP_nd": 0.31},
            {"model": "cam_nui", "rank1": 0.612, "rank1_nd": 0.59, "mAP": 0.3, "mAP_nd": 0.35},
        ]
    )
    lines = results_markdown(results).splitlines()
    assert lines[2] == "| baseline | 0.578 | 0.600 | 0.300 | 0.310 |"
    assert (
        lines[3]
        == "| cam_nui | 0.612 (+0.034) | 0.590 (-0.010) | 0.300 (+0.000) | 0.350 (+0.040) |"
    )


def test_camera_probe_of_a_finished_run(run, tmp_path):
    _, out, _ = run
    results = camera_probe(str(out), steps=20)
    assert list(results) == [
        "chance",
        "trunk features",
        "baseline z_id",
        *(f"{variant} z_id" for variant in VARIANTS),
    ]
    assert all(0.0 <= value <= 1.0 for value in results.values())
    with pytest.raises(ReIDError, match="no config.yaml; give an EmbAE run folder"):
        camera_probe(str(tmp_path))


def test_resume_reruns_a_variant_whose_inference_model_was_never_written(run):
    # model.keras is written last; a variant left without inference.keras (a
    # kill between the two, or an older version) is not taken as finished.
    config, out, _ = run
    (out / "fix_nui" / "inference.keras").unlink()
    stamps = {p: os.stat(p).st_mtime_ns for p in out.glob("*/model.keras")}
    train_embae(config, str(out), resume=True)
    assert (out / "fix_nui" / "inference.keras").is_file()
    changed = [p for p, stamp in stamps.items() if os.stat(p).st_mtime_ns != stamp]
    assert changed == [out / "fix_nui" / "model.keras"]
