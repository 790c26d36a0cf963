import keras
import numpy as np
import pytest
from helpers import config_round_trip, fit_one_step, save_and_reload

from keras_reid.layers import AttentionMap, MultiLevelAttention
from keras_reid.losses import SelfAttentionConstraint


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
    """Three conv stages at one resolution and their stacked attention maps."""
    inputs = keras.Input((6, 4, 3))
    x, stages = inputs, []
    for stage in (4, 5, 6):
        x = keras.layers.Conv2D(4 * stage, 3, padding="same", name=f"stage{stage}")(x)
        stages.append(x)
    outputs = MultiLevelAttention(name="attention")(stages)
    return keras.Model(inputs, {"attention": outputs, "stages": stages})


def test_multi_level_attention_in_fit_and_reload(tmp_path):
    model = three_stage_model()
    x = np.random.default_rng(1).normal(size=(4, 6, 4, 3)).astype("float32")
    out = model.predict(x, verbose=0)
    maps = np.asarray(out["attention"])
    assert maps.shape == (4, 3, 6, 4)
    for level in range(3):  # each level is its stage's attention, in its spatial shape
        expected = attention_reference(np.asarray(out["stages"][level])).reshape(4, 6, 4)
        np.testing.assert_allclose(maps[:, level], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(maps.reshape(4, 3, -1), axis=-1), 1.0, rtol=1e-5)
    # As a model output trained by the constraint: the logged loss is eq. (2).
    trained = keras.Model(model.inputs, model.outputs[0])
    a4, a5, a6 = maps[:, 0], maps[:, 1], maps[:, 2]
    expected = np.mean(np.sum((a6 - a5) ** 2, (1, 2)) + np.sum((a6 - a4) ** 2, (1, 2)))
    logs = fit_one_step(trained, x, np.zeros(4), loss=SelfAttentionConstraint())
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    config_round_trip(model.get_layer("attention"))
    save_and_reload(trained, tmp_path, x)


def test_levels_of_different_sizes_are_refused():
    stages = [keras.Input((8, 4, 16)), keras.Input((8, 4, 32)), keras.Input((4, 2, 16))]
    with pytest.raises(ValueError, match=r"same height and width.*\(None, 4, 2, 16\)"):
        MultiLevelAttention()(stages)
