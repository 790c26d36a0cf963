import keras
import numpy as np
import pytest
from helpers import config_round_trip, fit_one_step, save_and_reload

from keras_reid.layers import ClassificationHead
from keras_reid.losses import SoftmaxCrossEntropy


def test_logits_are_a_dense_layer_and_dropout_only_trains():
    head = ClassificationHead(5, dropout=0.5)
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    logits = np.asarray(head(x))
    kernel, bias = head.get_weights()
    np.testing.assert_allclose(logits, x @ kernel + bias, rtol=1e-5, atol=1e-6)
    assert not np.allclose(head(x, training=True), logits)
    assert head.compute_output_shape((None, 4)) == (None, 5)
    assert len(ClassificationHead(5, use_bias=False)(x).shape) == 2
    config_round_trip(head)


def test_trains_with_softmax_cross_entropy_and_reloads(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, ClassificationHead(3, dropout=0.1, name="logits")(inputs))
    x = np.random.default_rng(1).normal(size=(6, 4)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2])
    logs = fit_one_step(model, x, labels, loss=SoftmaxCrossEntropy(label_smoothing=0.1))
    assert np.isfinite(logs["loss"])
    save_and_reload(model, tmp_path, x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 0}, "Received: num_classes=0"),
        ({"num_classes": 2.5}, "Received: num_classes=2.5"),
        ({"num_classes": 3, "dropout": 1.0}, "Received: dropout=1.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassificationHead(**kwargs)
