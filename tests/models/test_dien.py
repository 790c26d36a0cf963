"""DIEN's network: the DIE head, the classifiers, RTDA's mask and fusion, a `.keras` round trip."""

import keras
import numpy as np
import pytest

from keras_reid.errors import ReIDError
from keras_reid.layers import GradientReversal, LoopFusion, TopDownAttention
from keras_reid.losses import DomainCrossEntropy, SoftmaxCrossEntropy
from keras_reid.models import build_model

SMALL = {"backbone": "small_convnet", "input_shape": [64, 32, 3], "embedding_dim": 24}


def small_dien(**args):
    keras.utils.set_random_seed(0)
    return build_model("dien", **{**SMALL, **args})


def images(count=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, 64, 32, 3)).astype("float32")


def test_the_die_is_max_and_average_pools_through_fc_bn_prelu():
    model = small_dien(num_classes=5)
    rng = np.random.default_rng(3)
    for weight in model.get_layer("die_bn").weights + model.get_layer("die_prelu").weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape))  # off their initial 0/1
    x = images()
    outputs = model(x, training=False)
    assert outputs["embedding"].shape == (4, 24) and outputs["logits"].shape == (4, 5)
    # The head recomputed by hand from the trunk's maps and the layers' weights.
    maps = np.asarray(model.get_layer("trunk")(x, training=False))
    pooled = np.concatenate([maps.max(axis=(1, 2)), maps.mean(axis=(1, 2))], axis=1)
    kernel, bias = (np.asarray(w) for w in model.get_layer("die_fc").weights)
    norm = model.get_layer("die_bn")
    gamma, beta, mean, var = (np.asarray(w) for w in norm.weights)
    fc = pooled @ kernel + bias
    assert kernel.shape == (2 * maps.shape[-1], 24)
    normed = gamma * (fc - mean) / np.sqrt(var + norm.epsilon) + beta
    alpha = np.asarray(model.get_layer("die_prelu").weights[0])
    die = np.where(normed > 0, normed, alpha * normed)
    expected = die / np.linalg.norm(die, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(outputs["embedding"]), expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(outputs["embedding"], axis=1), 1.0, atol=1e-5)


def test_the_identity_classifier_loss_averages_over_source_rows_only():
    logits = np.array([[0.0, np.log(3.0)], [np.log(4.0), 0.0], [5.0, -5.0], [-2.0, 7.0]])
    # Rows 0-1 are source images of classes 1 and 0; rows 2-3 target images (-1).
    expected = (-np.log(3.0 / 4.0) - np.log(4.0 / 5.0)) / 2  # 1/|I^s|, not 1/|I|
    value = float(SoftmaxCrossEntropy()(np.array([1, 0, -1, -1]), logits))
    assert value == pytest.approx(expected, rel=1e-6)


def test_the_domain_loss_is_binary_cross_entropy_with_targets_as_one():
    logits = np.array([[2.0], [-1.0], [0.5], [-3.0]])
    labels = np.array([4, 0, -1, -1])  # two source images (domain 0), two target (1)
    p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
    domain = np.array([0, 0, 1, 1])
    expected = -np.mean(domain * np.log(p) + (1 - domain) * np.log(1 - p))
    assert float(DomainCrossEntropy()(labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_the_domain_classifier_sits_behind_a_gradient_reversal():
    model = small_dien(num_classes=5, domain_classifier=True, reversal_scale=0.5)
    assert model(images())["domain"].shape == (4, 1)
    reversal = model.get_layer("domain_reversal")
    assert isinstance(reversal, GradientReversal) and float(reversal.factor) == 0.5
    # The reversal takes the DIE (before normalisation), as the classifier does.
    assert reversal.input is model.get_layer("logits").input


def test_rtda_mask_has_the_maps_shape_and_is_spatial_times_channel():
    attend = TopDownAttention(filters=[8, 4], reduction=4)
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(3, 4, 2, 16)).astype("float32")
    die = rng.normal(size=(3, 24)).astype("float32")
    mask = np.asarray(attend.attention_mask([maps, die]))
    assert mask.shape == maps.shape
    assert (mask > 0).all() and (mask < 1).all()
    # A Kronecker (outer) product per image: mask[h, w, c] = s[h, w] * g[c], so
    # every channel slice is one spatial map times a constant.
    ratio = mask / mask[:, :, :, :1]
    np.testing.assert_allclose(ratio, ratio[:, :1, :1, :] * np.ones_like(ratio), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(attend([maps, die])), maps * mask, rtol=1e-6)


@pytest.mark.parametrize("size", [(8, 4), (4, 2), (2, 1), (6, 3)])
def test_rtda_grows_the_spatial_map_to_any_feature_size(size):
    maps = np.ones((1, *size, 8), "float32")
    mask = TopDownAttention(filters=[4, 4]).attention_mask([maps, np.ones((1, 6), "float32")])
    assert tuple(mask.shape) == (1, *size, 8)


@pytest.mark.parametrize("loops", [1, 3])
def test_rtda_fuses_t_plus_one_dies_with_weights_starting_at_one_over_t_plus_one(loops):
    model = small_dien(attention_loops=loops)
    fusion = model.get_layer("rtda_fusion")
    np.testing.assert_allclose(np.asarray(fusion.kernel), np.full(loops + 1, 1 / (loops + 1)))
    # Each loop has its own BatchNorm; the FC and the attention are shared.
    names = {layer.name for layer in model.layers}
    assert {f"die_bn_{t}" for t in range(1, loops + 1)} <= names
    assert f"die_bn_{loops + 1}" not in names
    assert [type(layer) for layer in model.layers].count(TopDownAttention) == 1
    values = [np.random.default_rng(t).normal(size=(2, 5)) for t in range(loops + 1)]
    fused = LoopFusion()([v.astype("float32") for v in values])
    np.testing.assert_allclose(np.asarray(fused), np.mean(values, axis=0), rtol=1e-5)


@pytest.mark.parametrize("loops", [0, -1, 2.0, True])
def test_an_attention_loop_count_below_one_is_refused(loops):
    with pytest.raises(ReIDError, match=r"attention_loops .* must be an int >= 1, or null"):
        small_dien(attention_loops=loops)


def test_the_full_model_round_trips_through_keras(tmp_path):
    # In-process here (exact outputs); the trained model of
    # tests/training/test_dien.py is loaded in a fresh process, no custom_objects.
    model = small_dien(num_classes=5, domain_classifier=True, attention_loops=2)
    model.get_layer("rtda_fusion").kernel.assign([0.5, 0.3, 0.2])
    path = str(tmp_path / "dien.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = images()
    for name, value in model(x, training=False).items():
        np.testing.assert_allclose(np.asarray(loaded(x, training=False)[name]), value, atol=1e-6)
    np.testing.assert_allclose(np.asarray(loaded.get_layer("rtda_fusion").kernel), [0.5, 0.3, 0.2])
