"""The contract every registered loss keeps: registry, safety, fit, serialisation."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import config_round_trip, dense_model, fit_one_step, save_and_reload

from keras_reid.errors import ReIDError
from keras_reid.losses import (
    LOSSES,
    ActiveTripletFraction,
    BatchHardTripletLoss,
    CrossDomainTripletLoss,
    MarginSampleMiningLoss,
    MeanNegativeDistance,
    MeanPositiveDistance,
    QuadrupletLoss,
    SoftmaxCrossEntropy,
    TripletLoss,
    get_loss,
)

PK_PIDS = np.repeat(np.arange(4), 2)
MIXED_PIDS = np.array([0, 0, 1, 1, -1, -1, -1, -1])
CASES = [
    (BatchHardTripletLoss("soft"), PK_PIDS),
    (BatchHardTripletLoss(0.3), PK_PIDS),
    (TripletLoss(0.3), PK_PIDS),
    (MarginSampleMiningLoss(0.3), PK_PIDS),
    (QuadrupletLoss(0.5, 0.2, mining="hard"), PK_PIDS),
    (QuadrupletLoss(0.3, 0.2, mining="all"), PK_PIDS),
    (CrossDomainTripletLoss(0.3, lam=0.5), MIXED_PIDS),
    (SoftmaxCrossEntropy(label_smoothing=0.1), PK_PIDS),
]
IDS = [f"{type(loss).__name__}-{i}" for i, (loss, _) in enumerate(CASES)]


def test_registry_names_and_get_loss():
    assert LOSSES.names() == [
        "batch_hard",
        "cross_domain",
        "domain",
        "msml",
        "quadruplet",
        "sac",
        "softmax",
        "triplet",
    ]
    loss = get_loss("quadruplet", margin1=0.5, mining="all")
    assert isinstance(loss, QuadrupletLoss) and (loss.margin1, loss.mining) == (0.5, "all")
    with pytest.raises(ReIDError, match="unknown loss 'hard_triplet'; expected one of: batch_hard"):
        get_loss("hard_triplet")
    with pytest.raises(ReIDError, match=r"loss 'msml' takes no argument\(s\) "):
        get_loss("msml", margni=0.3)


@pytest.mark.parametrize("loss, pids", CASES, ids=IDS)
def test_coincident_embeddings_give_finite_loss_and_gradients(loss, pids):
    # All equal, all zero, and pairs of duplicates: every distance is 0 somewhere.
    for embeddings in (np.ones((8, 4)), np.zeros((8, 4)), np.repeat(np.eye(4), 2, axis=0)):
        variable = tf.Variable(embeddings.astype("float32"))
        with tf.GradientTape() as tape:
            value = loss(pids, variable)
        assert np.isfinite(float(value))
        assert np.all(np.isfinite(tape.gradient(value, variable).numpy()))


@pytest.mark.parametrize("loss, pids", CASES, ids=IDS)
def test_pids_as_column_give_the_same_loss(loss, pids):
    embeddings = np.random.default_rng(2).normal(size=(8, 4)).astype("float32")
    np.testing.assert_allclose(
        float(loss(pids[:, None], embeddings)), float(loss(pids, embeddings)), rtol=1e-6
    )


@pytest.mark.parametrize("loss, pids", CASES, ids=IDS)
def test_trains_in_fit_and_reloads_from_keras_file(loss, pids, tmp_path):
    config_round_trip(loss)
    x = np.random.default_rng(1).normal(size=(8, 6)).astype("float32")
    model = dense_model(6, 4)
    logs = fit_one_step(model, x, pids, loss=loss)
    assert np.isfinite(logs["loss"])
    reloaded = save_and_reload(model, tmp_path, x)
    assert type(reloaded.loss) is type(loss)
    assert reloaded.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(
        reloaded.evaluate(x, pids, batch_size=8, verbose=0),
        float(loss(pids, model.predict(x, verbose=0))),
        rtol=1e-5,
    )


def test_monitoring_metrics_appear_in_fit_logs_and_reload(tmp_path):
    x = np.random.default_rng(3).normal(size=(8, 6)).astype("float32")
    metrics = [MeanPositiveDistance(), MeanNegativeDistance(), ActiveTripletFraction(0.3)]
    for metric in metrics:
        config_round_trip(metric)
    model = dense_model(6, 4)
    logs = fit_one_step(model, x, PK_PIDS, loss=BatchHardTripletLoss(0.3), metrics=metrics)
    names = {"mean_positive_distance", "mean_negative_distance", "active_triplet_fraction"}
    assert names <= set(logs)
    assert 0.0 <= logs["active_triplet_fraction"] <= 1.0
    save_and_reload(model, tmp_path, x)


@pytest.mark.parametrize("loss, pids", CASES, ids=IDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_embedding_gives_a_non_finite_loss(loss, pids, bad):
    # A diverged model must show in the loss, where the NaN stop sees it: a
    # distance of 0 for NaN embeddings once gave a plausible 0.6931 (ln 2).
    # Eagerly, in a traced graph and under XLA (where fit runs): maxima treat
    # NaN differently in each.
    graph = tf.function(lambda y, x: loss(y, x))
    xla = tf.function(lambda y, x: loss(y, x), jit_compile=True)
    for rows in (slice(3, 4), slice(None)):
        embeddings = np.random.default_rng(4).normal(size=(8, 4)).astype("float32")
        embeddings[rows] = bad
        for run in (loss, graph, xla):
            assert not np.isfinite(float(run(pids, embeddings)))
