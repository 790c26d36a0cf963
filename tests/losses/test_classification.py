import keras
import numpy as np
import pytest

from keras_reid.losses import SoftmaxCrossEntropy


def cross_entropy_reference(labels, logits, smoothing):
    """-sum_c q_c log p_c with q = (1 - eps) onehot + eps / C; 0 for a negative label."""
    losses = []
    for label, row in zip(labels, logits, strict=True):
        if label < 0:
            losses.append(0.0)
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
