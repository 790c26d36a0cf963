import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import fit_one_step

from keras_reid.errors import ReIDError
from keras_reid.losses import SoftmaxCrossEntropy


def cross_entropy_reference(labels, logits, smoothing):
    """Mean over labelled rows of -sum_c q_c log p_c, q = (1 - eps) onehot + eps / C."""
    losses = []
    for label, row in zip(labels, logits, strict=True):
        if label < 0:
            continue
        log_p = row - np.log(np.sum(np.exp(row)))
        q = np.full(len(row), smoothing / len(row))
        q[label] += 1.0 - smoothing
        losses.append(-np.sum(q * log_p))
    return np.mean(losses)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_matches_numpy(smoothing):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 5)).astype("float32") * 3
    labels = np.array([0, 4, 2, 2, -1, 1, 3])
    expected = cross_entropy_reference(labels, logits, smoothing)
    got = float(SoftmaxCrossEntropy(smoothing)(labels, logits))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    got = float(SoftmaxCrossEntropy(smoothing, from_logits=False)(labels, probabilities))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_without_smoothing_equals_keras_sparse_cross_entropy():
    logits = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    labels = np.array([2, 0, 1, 1])
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(
        float(SoftmaxCrossEntropy()(labels, logits)), float(keras_loss(labels, logits)), rtol=1e-6
    )


@pytest.mark.parametrize("value", [1.0, -0.1, True])
def test_bad_label_smoothing(value):
    with pytest.raises(ValueError, match=f"Received: label_smoothing={value!r}"):
        SoftmaxCrossEntropy(label_smoothing=value)


# Hand-computed: logits [0, ln 3] give softmax [1/4, 3/4], so the loss of class
# 0 is ln 4 and of class 1 is ln(4/3); logits [0, 0] give ln 2 for either class.
LN4, LN4_3, LN2 = np.log(4.0), np.log(4.0 / 3.0), np.log(2.0)
HAND_LOGITS = np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)], [0.0, 0.0], [0.0, 0.0]], "float32")


def test_mean_is_over_labelled_rows_only():
    # Two labelled rows (ln 4, ln 4/3) and two unlabelled: the mean of the two,
    # not the sum over four.
    labels = np.array([0, 1, -1, -1])
    expected = (LN4 + LN4_3) / 2
    np.testing.assert_allclose(float(SoftmaxCrossEntropy()(labels, HAND_LOGITS)), expected, 1e-6)
    graph = tf.function(lambda y, x: SoftmaxCrossEntropy()(y, x))
    np.testing.assert_allclose(float(graph(labels, HAND_LOGITS)), expected, 1e-6)


def test_reductions_and_sample_weights_count_labelled_rows_only():
    labels = np.array([0, 1, -1, 1])
    rows = np.array([LN4, LN4_3, 0.0, LN2])
    weights = np.array([1.0, 3.0, 5.0, 0.5], "float32")

    def value(reduction, sample_weight=None):
        loss = SoftmaxCrossEntropy(reduction=reduction)
        return np.asarray(loss(labels, HAND_LOGITS, sample_weight=sample_weight))

    np.testing.assert_allclose(value("none"), rows, 1e-6)
    np.testing.assert_allclose(value("sum"), rows.sum(), 1e-6)
    np.testing.assert_allclose(value("sum_over_batch_size"), rows.sum() / 3, 1e-6)
    np.testing.assert_allclose(value("mean"), rows.sum() / 3, 1e-6)
    weighted = LN4 * 1.0 + LN4_3 * 3.0 + LN2 * 0.5
    np.testing.assert_allclose(value("sum", weights), weighted, 1e-6)
    np.testing.assert_allclose(value("sum_over_batch_size", weights), weighted / 3, 1e-6)
    np.testing.assert_allclose(value("mean_with_sample_weight", weights), weighted / 4.5, 1e-6)


def test_a_batch_without_labelled_rows_gives_zero_not_nan():
    labels = np.full(4, -1)
    xla = tf.function(lambda y, x: SoftmaxCrossEntropy()(y, x), jit_compile=True)
    for run in (SoftmaxCrossEntropy(), xla):
        assert float(run(labels, HAND_LOGITS)) == 0.0
    variable = tf.Variable(HAND_LOGITS)
    with tf.GradientTape() as tape:
        value = SoftmaxCrossEntropy()(labels, variable)
    assert not np.any(tape.gradient(value, variable).numpy())


def test_fit_logs_the_mean_over_labelled_rows():
    # A model whose logits are its input (an identity Dense layer): one fit
    # step logs the hand-computed loss of the batch, taken before the update.
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(2, use_bias=False, kernel_initializer="identity")
    model = keras.Model(inputs, dense(inputs))
    labels = np.array([0, 1, -1, -1])
    logs = fit_one_step(model, HAND_LOGITS, labels, loss=SoftmaxCrossEntropy())
    np.testing.assert_allclose(logs["loss"], (LN4 + LN4_3) / 2, rtol=1e-5)


@pytest.mark.parametrize("label", [2, 7, -2])
def test_refuses_a_label_outside_minus_one_to_c_eagerly(label):
    labels = np.array([0, label, -1, 1])
    with pytest.raises(ReIDError, match=rf"label {label} .*C=2.*Received: label={label}"):
        SoftmaxCrossEntropy()(labels, HAND_LOGITS)


@pytest.mark.parametrize("label", [2, -2])
def test_refuses_a_label_outside_minus_one_to_c_in_a_graph_and_in_fit(label):
    labels = np.array([0, 1, label, -1])
    message = rf"label outside \[-1, C\).*C=\] \[2\].*first such label:\] \[{label}\]"
    graph = tf.function(lambda y, x: SoftmaxCrossEntropy()(y, x))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        graph(labels, HAND_LOGITS)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="sgd", loss=SoftmaxCrossEntropy(), jit_compile=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.fit(HAND_LOGITS, labels, batch_size=4, verbose=0)


def test_a_label_outside_the_classes_gives_nan_under_xla():
    # XLA drops Assert ops ("Ignoring Assert operator"), so no error can be
    # raised there: the loss is NaN instead, which stops the run (StopOnNaN).
    xla = tf.function(lambda y, x: SoftmaxCrossEntropy()(y, x), jit_compile=True)
    assert np.isfinite(float(xla(np.array([0, 1, -1, 1]), HAND_LOGITS)))
    for labels in ([0, 1, 2, -1], [-1, -1, -2, -1]):
        assert np.isnan(float(xla(np.array(labels), HAND_LOGITS)))
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="sgd", loss=SoftmaxCrossEntropy(), jit_compile=True)
    history = model.fit(HAND_LOGITS, np.array([0, 5, 1, 1]), batch_size=4, verbose=0)
    assert np.isnan(history.history["loss"][0])
