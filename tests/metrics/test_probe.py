"""The linear probe against features whose label content is known by construction."""

import numpy as np
import pytest

from keras_reid.evaluation.metrics import probe_accuracy


def test_probe_reads_a_coded_label_and_not_noise():
    rng = np.random.default_rng(0)
    cameras = np.repeat(np.arange(4), 100)
    train = rng.permutation(400) < 200
    noise = rng.normal(size=(400, 8)).astype("float32")
    coded = noise.copy()
    # The camera, readable from one feature: classes 6 std apart, Bayes error 0.2%.
    coded[:, 0] += 6.0 * cameras
    assert probe_accuracy(coded, cameras, train) > 0.95
    assert probe_accuracy(noise, cameras, train) < 0.45  # chance 0.25


def test_probe_needs_rows_to_train_and_to_score():
    features = np.zeros((4, 2), "float32")
    with pytest.raises(ValueError, match="train must mark some rows, not all"):
        probe_accuracy(features, [0, 1, 0, 1], [True] * 4)
    with pytest.raises(ValueError, match="features \\(4, 2\\), 3 labels"):
        probe_accuracy(features, [0, 1, 0], [True, False, True, False])
