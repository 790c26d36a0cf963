import keras
import numpy as np
import pytest

from keras_reid.errors import ReIDError
from keras_reid.models import build_backbone, build_embedding_model


def test_embedding_model_outputs_and_head_structure():
    model = build_embedding_model(alpha=0.25, input_shape=(64, 32, 3), embedding_dim=16)
    assert model.output_names == ["embedding"]
    out = model(np.zeros((3, 64, 32, 3), "float32"))
    assert out["embedding"].shape == (3, 16)
    # GAP -> Dense 1024 -> BN -> ReLU -> Dense (linear), TriNet's head (the default order).
    assert model.get_layer("trunk_features").output.shape == (None, 256)
    assert model.get_layer("embedding_fc1").units == 1024
    assert model.get_layer("embedding").activation.__name__ == "linear"


def test_preprocessing_is_inside_the_model():
    # MobileNet expects [-1, 1]: the model must map raw 0..255 pixels itself.
    trunk = build_backbone("mobilenet", (64, 32, 3), alpha=0.25)
    layer = trunk.get_layer("preprocessing")
    x = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    np.testing.assert_allclose(np.asarray(layer(x)), [[[[-1.0, 0.0, 1.0]]]], atol=1e-6)
    caffe = build_backbone("resnet50", (64, 32, 3)).get_layer("preprocessing")
    np.testing.assert_allclose(
        np.asarray(caffe(x)), [[[[255.0 - 103.939, 127.5 - 116.779, 0.0 - 123.68]]]], atol=1e-4
    )


def test_local_imagenet_weights_load_and_change_the_trunk(mobilenet_025_weights):
    images = np.random.default_rng(0).uniform(0, 255, (2, 256, 128, 3)).astype("float32")
    random_trunk = build_backbone("mobilenet", (256, 128, 3), alpha=0.25)
    trunk = build_backbone("mobilenet", (256, 128, 3), alpha=0.25, weights=mobilenet_025_weights)
    conv1 = trunk.layers[-1].get_layer("conv1").kernel
    reference = keras.applications.MobileNet(
        include_top=False, alpha=0.25, weights=str(mobilenet_025_weights), input_shape=(224, 224, 3)
    )
    np.testing.assert_array_equal(
        np.asarray(conv1), np.asarray(reference.get_layer("conv1").kernel)
    )
    assert not np.allclose(np.asarray(trunk(images)), np.asarray(random_trunk(images)))


def test_bad_backbone_arguments():
    with pytest.raises(
        ReIDError,
        match="unknown backbone 'vgg'; expected one of: "
        "bn_inception, mobilenet, resnet50, resnext50, small_convnet",
    ):
        build_backbone("vgg")
    with pytest.raises(ReIDError, match="alpha must be"):
        build_embedding_model(alpha=0.3, input_shape=(64, 32, 3))
    with pytest.raises(ReIDError, match="does not exist"):
        build_embedding_model(alpha=0.25, input_shape=(64, 32, 3), weights="/nope.h5")
    with pytest.raises(ReIDError, match="below the 32x32 minimum"):
        build_embedding_model(alpha=0.25, input_shape=(32, 16, 3))


def test_mismatched_weights_file_is_refused(mobilenet_025_weights):
    with pytest.raises(ReIDError, match=r"cannot load weights .* \(alpha=0.5\)"):
        build_backbone("mobilenet", (64, 32, 3), alpha=0.5, weights=mobilenet_025_weights)


def test_small_convnet_trunk_and_bn_momentum():
    model = build_embedding_model("small_convnet", input_shape=(64, 32, 3), bn_momentum=0.9)
    # Four stride-2 stages: 64x32 -> 4x2 maps of the last width, pooled to 256.
    trunk = model.get_layer("trunk")
    assert trunk.output.shape == (None, 4, 2, 256)
    assert model.get_layer("trunk_features").output.shape == (None, 256)
    norms = [
        layer
        for layer in trunk.layers[-1].layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == 8 and all(layer.momentum == 0.9 for layer in norms)
    assert model.get_layer("embedding_bn").momentum == 0.9
    with pytest.raises(ReIDError, match="no pretrained weights"):
        build_backbone("small_convnet", (64, 32, 3), weights="imagenet")
    with pytest.raises(ReIDError, match="bn_momentum must be in"):
        build_backbone("small_convnet", (64, 32, 3), bn_momentum=1.5)


def _randomise_head(model, seed=0):
    """Give the head's BatchNorm non-trivial statistics and affine weights."""
    rng = np.random.default_rng(seed)
    bn = model.get_layer("embedding_bn")
    gamma, beta, mean, variance = (w.shape for w in bn.get_weights())
    bn.set_weights(
        [
            rng.uniform(0.5, 1.5, gamma).astype("float32"),
            rng.normal(0, 0.5, beta).astype("float32"),
            rng.normal(0, 0.5, mean).astype("float32"),
            rng.uniform(0.5, 2.0, variance).astype("float32"),
        ]
    )


def _head_by_hand(model, features, order):
    """The head written out in numpy, in the given order, from the model's weights."""
    w1, b1 = model.get_layer("embedding_fc1").get_weights()
    bn = model.get_layer("embedding_bn")
    gamma, beta, mean, variance = bn.get_weights()
    w2, b2 = model.get_layer("embedding").get_weights()

    def relu(x):
        return np.maximum(x, 0.0)

    def norm(x):
        return gamma * (x - mean) / np.sqrt(variance + bn.epsilon) + beta

    hidden = features @ w1 + b1
    hidden = relu(norm(hidden)) if order == "bn_relu" else norm(relu(hidden))
    return hidden @ w2 + b2


@pytest.mark.parametrize("order", ["bn_relu", "relu_bn"])
def test_head_order_in_the_built_model(order):
    keras.utils.set_random_seed(0)
    model = build_embedding_model(
        "small_convnet", input_shape=(64, 32, 3), embedding_dim=8, head_order=order
    )
    _randomise_head(model)
    images = np.random.default_rng(1).uniform(0, 255, (4, 64, 32, 3)).astype("float32")
    features = keras.Model(model.inputs, model.get_layer("trunk_features").output)(images)
    features = keras.ops.convert_to_numpy(features)
    got = keras.ops.convert_to_numpy(model(images, training=False)["embedding"])
    other = "relu_bn" if order == "bn_relu" else "bn_relu"
    np.testing.assert_allclose(got, _head_by_hand(model, features, order), rtol=1e-4, atol=1e-4)
    # The two orders differ on these weights, so the check above tells them apart.
    assert not np.allclose(got, _head_by_hand(model, features, other), atol=1e-2)


def test_unknown_head_order_is_refused():
    with pytest.raises(ReIDError, match=r"unknown head_order 'relu'; expected one of: bn_relu"):
        build_embedding_model("small_convnet", input_shape=(64, 32, 3), head_order="relu")
