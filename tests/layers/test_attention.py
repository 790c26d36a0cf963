import keras
import numpy as np
import pytest
from helpers import config_round_trip, fit_one_step, save_and_reload

from keras_reid.layers import AttentionConsistency, AttentionMap


def attention_reference(features):
    """Per sample: mean over channels of the squares, flattened row-major, unit L2 norm."""
    maps = []
    for sample in features:
        energy = np.array([[np.mean(pixel**2) for pixel in row] for row in sample]).ravel()
        maps.append(energy / np.linalg.norm(energy))
    return np.array(maps)


def test_attention_map_matches_numpy():
    features = np.random.default_rng(0).normal(size=(2, 4, 3, 5)).astype("float32")
    layer = AttentionMap()
    maps = np.asarray(layer(features))
    np.testing.assert_allclose(maps, attention_reference(features), rtol=1e-5)
    assert layer.compute_output_shape((None, 4, 3, 5)) == (None, 12)
    np.testing.assert_array_equal(layer(np.zeros((1, 2, 2, 3), "float32")), np.zeros((1, 4)))
    config_round_trip(layer)


def three_stage_model():
    """Three conv stages at one resolution, their attention maps, the consistency loss."""
    inputs = keras.Input((6, 4, 3))
    x, maps = inputs, []
    for stage in (4, 5, 6):
        x = keras.layers.Conv2D(4, 3, padding="same", name=f"stage{stage}")(x)
        maps.append(AttentionMap(name=f"attention{stage}")(x))
    outputs = AttentionConsistency(weight=2.0, name="attention")(maps)
    return keras.Model(inputs, outputs)


def test_consistency_loss_in_fit_and_reload(tmp_path):
    model = three_stage_model()
    x = np.random.default_rng(1).normal(size=(4, 6, 4, 3)).astype("float32")
    maps = np.asarray(model.predict(x, verbose=0))
    assert maps.shape == (4, 3, 24)
    a4, a5, a6 = maps[:, 0], maps[:, 1], maps[:, 2]
    expected = 2.0 * np.mean(np.sum((a6 - a5) ** 2, 1) + np.sum((a6 - a4) ** 2, 1))
    # No target and no compiled loss: the total loss is the added constraint alone.
    logs = fit_one_step(model, x)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    config_round_trip(model.get_layer("attention"))
    save_and_reload(model, tmp_path, x)


def test_consistency_rejects_maps_of_different_sizes():
    maps = [keras.Input((24,)), keras.Input((24,)), keras.Input((6,))]
    with pytest.raises(ValueError, match=r"Received: maps4, maps5, maps6 with shapes"):
        AttentionConsistency()(maps)
    with pytest.raises(ValueError, match="Received: weight=-2"):
        AttentionConsistency(weight=-2)
