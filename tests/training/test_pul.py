"""PUL (keras_reid/training/pul.py): the selection on a hand-made case, the λ schedule,
the weight copy, a tiny run through the console script, and bad input."""

import os

import numpy as np
import pandas as pd
import pytest
import yaml
from console import run
from helpers import TINY_TRUNK

from keras_reid.errors import ReIDError
from keras_reid.layers.classification import ClassificationHead
from keras_reid.models import build_model
from keras_reid.training.pul import PULOptions, cluster_and_select, copy_weights, pul_model

# Its module fixtures train or save whole runs: one worker makes them once.
pytestmark = pytest.mark.xdist_group("pul")

# Three tight groups around the axes e1, e2, e3, and two outliers:
# 9 between e1 and e2 (nearer e1), 10 between e2 and e3 (nearer e2).
POINTS = np.array(
    [
        (1, 0.05, 0),
        (1, 0, 0),
        (1, -0.05, 0),
        (0, 1, 0.05),
        (0, 1, 0),
        (0, 1, -0.05),
        (0.05, 0, 1),
        (0, 0, 1),
        (-0.05, 0, 1),
        (1, 0.8, 0),
        (0, 1, 0.9),
    ]
)


def test_cluster_and_select_on_three_groups_and_two_outliers():
    labels, selected, centers = cluster_and_select(POINTS, 3, 0.85, seed=0)
    # Each outlier joins the group it is nearer to: {0, 1, 2, 9}, {3, 4, 5, 10}, {6, 7, 8}.
    groups = [[0, 1, 2, 9], [3, 4, 5, 10], [6, 7, 8]]
    assert sorted(sorted(np.flatnonzero(labels == c).tolist()) for c in range(3)) == groups
    # The centroid of {0, 1, 2, 9} (unit vectors) is about (0.945, 0.156, 0): the real
    # point nearest it is 0 (distance 0.12; 1 is at 0.17). Likewise 3 for the second
    # group (centroid (0, 0.935, 0.167)) and 7 for the third (centroid on e3).
    assert sorted(centers.tolist()) == [0, 3, 7]
    assert {int(labels[c]) for c in centers} == {0, 1, 2}
    # Cosines: group members >= 0.995 to their center; outlier 9 is at 0.811 to
    # center 0, outlier 10 at 0.775 to center 3 (and lower to the others).
    assert selected.tolist() == [True] * 9 + [False, False]
    _, selected, _ = cluster_and_select(POINTS, 3, 0.8, seed=0)
    assert selected.tolist() == [True] * 9 + [True, False]
    _, selected, _ = cluster_and_select(POINTS, 3, 1.0, seed=0)
    assert not selected.any()  # nothing is more than perfectly similar


def test_cluster_and_select_refuses_impossible_cluster_counts():
    for clusters in (1, len(POINTS) + 1):
        with pytest.raises(ReIDError, match="clusters must be in"):
            cluster_and_select(POINTS, clusters, 0.85)


def test_the_threshold_grows_by_lambda_step_per_iteration():
    options = PULOptions(iterations=4, clusters=10, lambda_start=0.6, lambda_step=0.1)
    assert [round(options.threshold(t), 6) for t in (1, 2, 3, 4)] == [0.6, 0.7, 0.8, 0.9]
    assert PULOptions().threshold(25) == 0.85  # the released code: constant
    with pytest.raises(ReIDError, match="outside"):  # λ_4 = 1.05
        PULOptions(iterations=4, clusters=10, lambda_start=0.9, lambda_step=0.05)


@pytest.mark.parametrize(
    "options",
    [{"iterations": 0}, {"clusters": 1}, {"lambda_start": -1.0}, {"restart": "last"}],
)
def test_bad_pul_options_are_one_line_errors(options):
    with pytest.raises(ReIDError, match="pul") as error:
        PULOptions(**options)
    assert "\n" not in str(error.value)


def small_model(num_classes=None):
    return build_model(
        "trinet",
        backbone="small_convnet",
        input_shape=(64, 32, 3),
        embedding_dim=8,
        num_classes=num_classes,
    )


def test_pul_model_copies_every_weight_but_a_new_classifier():
    start, other = small_model(num_classes=5), small_model()
    rng = np.random.default_rng(0)
    for net in (start, other):  # distinct, non-default weights (BN statistics too)
        net.set_weights([rng.normal(size=w.shape).astype("float32") for w in net.weights])
    model = pul_model(start, 7, dropout=0.5, classifier_std=0.001, seed=3)
    assert sorted(model.output_names) == ["embedding", "logits"]
    head = model.get_layer("logits")
    assert isinstance(head, ClassificationHead) and head.num_classes == 7 and head.dropout == 0.5
    kernel = np.asarray(head.dense.kernel)
    assert kernel.shape == (8, 7) and 0.0005 < kernel.std() < 0.002
    assert not np.asarray(head.dense.bias).any()
    for source in (start, other):
        model = pul_model(start, 7, source=source)
        copied = [layer for layer in model.layers if layer.weights and layer.name != "logits"]
        assert "trunk" in [layer.name for layer in copied]
        for layer in copied:
            for mine, theirs in zip(
                layer.get_weights(), source.get_layer(layer.name).get_weights(), strict=True
            ):
                np.testing.assert_array_equal(mine, theirs)
    # The clone shares no variable with the start model.
    start_ids = {id(w) for w in start.weights}
    assert not start_ids & {id(w) for w in model.weights}


def test_copy_weights_refuses_another_architecture():
    wider = build_model(
        "trinet", backbone="small_convnet", input_shape=(64, 32, 3), embedding_dim=16
    )
    with pytest.raises(ReIDError, match="same architecture"):
        copy_weights(small_model(), wider)


def pul_config(roots, **pul):
    def spec(preset):
        return {"name": preset, "root": roots[preset], "ids": 12, "size": [64, 32]}

    return {
        "data": {"target": spec("synth-b"), "sources": [spec("synth-a")]},
        "start": {
            "train": {
                "model": {
                    "name": "trinet",
                    **TINY_TRUNK,
                    "input_shape": [64, 32, 3],
                    "embedding_dim": 16,
                },
                "losses": {"logits": {"name": "softmax"}},
                "batches": {"p": 3, "k": 2},
                "optimizer": {"name": "adam"},
                "schedule": {"name": "piecewise", "boundaries": [], "values": [1.0e-3]},
                "train": {"epochs": 1},
            }
        },
        "pul": {"iterations": 2, "clusters": 4, "lambda_start": 0.5, "lambda_step": 0.2, **pul},
        "finetune": {
            "batches": {"p": 2, "k": 1},
            "optimizer": {"name": "sgd", "momentum": 0.9},
            "schedule": {"name": "piecewise", "boundaries": [], "values": [1.0e-3]},
            "train": {"epochs": 1},
        },
        "train": {"seed": 1, "verbose": 0},
    }


@pytest.fixture(scope="module")
def tiny_run(tiny_synth, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pul")
    config = folder / "pul.yaml"
    config.write_text(yaml.safe_dump(pul_config(tiny_synth)))
    out = folder / "run"
    code, stdout, err = run(["train", "pul", "--config", config, "--out", out])
    assert code == 0, err
    return out, stdout


def test_a_tiny_run_writes_the_rows_and_k_way_classifiers(tiny_run):
    import keras

    out, stdout = tiny_run
    results = pd.read_csv(out / "results.csv")
    assert results["model"].tolist() == ["start", "pul_1", "pul_2"]
    assert results["iteration"].tolist() == [0, 1, 2]
    # λ_t = lambda_start + (t - 1) * lambda_step, as used in each iteration.
    assert results["threshold"].iloc[1:].round(6).tolist() == [0.5, 0.7]
    for t in (1, 2):
        labels = pd.read_csv(out / "pseudo_labels" / f"iter_{t}.csv")
        row = results.iloc[t]
        assert row["selected"] == labels["selected"].sum() > 0
        assert row["clusters_used"] == labels.loc[labels["selected"], "cluster"].nunique()
        assert labels["center"].sum() == 4 and labels.loc[labels["center"], "selected"].all()
        model = keras.models.load_model(out / f"iter_{t}" / "model.keras")
        assert model.get_layer("logits").num_classes == 4
    assert results[["rank1", "rank1_nd", "mAP", "mAP_nd"]].notna().all().all()
    assert (out / "start" / "model.keras").is_file() and (out / "results.md").is_file()
    assert "pul_2" in stdout


def test_ten_view_scores_are_hermans_test_time_augmentation(tiny_run, tiny_synth):
    """results_ten_views: the same rows scored with five crops and their mirrors."""
    import keras

    from keras_reid.data.market1501 import read_market_layout
    from keras_reid.evaluation.evaluator import evaluate_model

    out, _ = tiny_run
    ten = pd.read_csv(out / "results_ten_views.csv")
    flip = pd.read_csv(out / "results.csv")
    assert ten["model"].tolist() == flip["model"].tolist()
    pd.testing.assert_frame_equal(ten[["selected", "threshold"]], flip[["selected", "threshold"]])
    target = read_market_layout(tiny_synth["synth-b"], "synth-b")
    for name, path in (("start", "start"), ("pul_2", "iter_2")):
        model = keras.models.load_model(out / path / "model.keras")
        row = evaluate_model(model, target, tta="five-crop-flip", progress=False).iloc[0]
        scored = ten.set_index("model").loc[name]
        for score in ("rank1", "rank1_nd", "mAP", "mAP_nd"):
            assert scored[score] == pytest.approx(row[score], abs=1e-6), (name, score)


def test_resume_reuses_the_finished_iterations(tiny_run, tiny_synth):
    out, _ = tiny_run
    before = {t: os.path.getmtime(out / f"iter_{t}" / "model.keras") for t in (1, 2)}
    config = out.parent / "pul.yaml"
    code, _, err = run(["train", "pul", "--config", config, "--out", out, "--resume"])
    assert code == 0, err
    assert before == {t: os.path.getmtime(out / f"iter_{t}" / "model.keras") for t in (1, 2)}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"start": {"model_path": "x.keras", "train": {}}}, "exactly one of start.model_path"),
        ({"start": {"model_path": "/no/such/model.keras"}}, "start.model_path: no file"),
        ({"pul": {"clusters": 100000}}, "pul.clusters=100000 is more than"),
    ],
)
def test_bad_input_is_one_line_on_stderr(tiny_synth, tmp_path, change, message):
    config = pul_config(tiny_synth)
    config.update({key: {**config[key], **value} for key, value in change.items()})
    if "start" in change:
        config["start"] = change["start"]
    path = tmp_path / "pul.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = run(["train", "pul", "--config", path, "--out", tmp_path / "run"])
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_no_reliable_image_names_lambda(tiny_run, tiny_synth, tmp_path):
    out, _ = tiny_run
    config = pul_config(tiny_synth, lambda_start=1.0, lambda_step=0.0)
    config["start"] = {"model_path": str(out / "start" / "model.keras")}
    path = tmp_path / "pul.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = run(["train", "pul", "--config", path, "--out", tmp_path / "run"])
    # The start model's scores are logged first; the error is one line, the last.
    last = err.strip().splitlines()[-1]
    assert code == 2 and "λ_1 = 1" in last and "lower pul.lambda_start" in last, err
    assert err.count("error") == 1, err
