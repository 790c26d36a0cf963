"""Every trunk through the shared checks, plus what each one promises on its own.

Expected shapes are stride arithmetic at 64x32: stage k is at stride 2**k,
so 32x16, 16x8, 8x4, 4x2, 2x1 for stages 1-5; a dilated stage keeps the
resolution of the stage before it.
"""

import keras
import numpy as np
import pytest
from helpers import set_bn_statistics, slow_except

from keras_reid.errors import ReIDError
from keras_reid.models import BACKBONES, build_backbone, resnext
from keras_reid.models.resnext import GroupedConv2D

from .backbone_checks import (
    check_last_stride,
    check_round_trip,
    check_stages,
    check_weight_file,
    images,
    save_legacy_h5,
)

SIZE = (64, 32, 3)
GRID = [(32, 16), (16, 8), (8, 4), (4, 2), (2, 1)]


def shapes(channels, grid=GRID):
    pairs = zip(grid[: len(channels)], channels, strict=True)
    return {f"stage{k + 1}": (*hw, c) for k, (hw, c) in enumerate(pairs)}


# name -> (options, channels of stage1..)
TRUNKS = {
    "mobilenet": ({"alpha": 0.25}, (16, 32, 64, 128, 256)),  # 64, 128, 256, 512, 1024 x alpha
    "resnet50": ({}, (64, 256, 512, 1024, 2048)),
    "small_convnet": ({"widths": (8, 16, 24)}, (8, 16, 24)),
    "bn_inception": ({}, (64, 192, 320, 608, 1024)),  # Ioffe & Szegedy, Fig. 5
    "resnext50": ({}, (64, 256, 512, 1024, 2048)),  # Xie et al., Table 1
}


def test_every_registered_trunk_is_checked_here():
    assert sorted(TRUNKS) == BACKBONES.names()


# ResNet-50 and ResNeXt-50 build in ~20 s each: their stages are checked under
# -m slow (ResNeXt's grouped convolution on its own below, ResNet-50's ImageNet
# layout by its weight-file test).
SMALL_TRUNKS = ("mobilenet", "bn_inception", "small_convnet")


@pytest.mark.parametrize("name", slow_except(sorted(TRUNKS), SMALL_TRUNKS))
def test_stages_last_stride_and_round_trip(name, tmp_path):
    options, channels = TRUNKS[name]
    expected = shapes(channels)
    trunk = check_stages(name, SIZE, expected, **options)
    check_last_stride(name, SIZE, **options)
    last = f"stage{len(channels)}"
    stride1 = {**expected, last: (expected[last][0] * 2, expected[last][1] * 2, channels[-1])}
    check_stages(name, SIZE, stride1, last_stride=1, **options)
    check_round_trip(trunk, tmp_path, SIZE)


@pytest.mark.parametrize(
    "name", slow_except(["mobilenet", "resnet50", "bn_inception", "resnext50"], SMALL_TRUNKS)
)
def test_dilated_stages_keep_the_resolution(name, tmp_path):
    # SAL's setting: stage4 and stage5 dilated by 2 and 4, everything from stage3 at 8x4.
    options, channels = TRUNKS[name]
    grid = [(32, 16), (16, 8), (8, 4), (8, 4), (8, 4)]
    trunk = check_stages(
        name, SIZE, shapes(channels, grid), last_stride=1, dilation=(2, 4), **options
    )
    check_round_trip(trunk, tmp_path, SIZE)
    # One dilated last stage: stage5 at the resolution of stage4.
    check_stages(
        name, SIZE, shapes(channels, GRID[:4] + [(4, 2)]), last_stride=1, dilation=2, **options
    )


def rates(trunk, prefix, suffix):
    return {
        layer.name: (layer.strides[0], layer.dilation_rate[0])
        for layer in trunk.layers[-1].layers
        if layer.name.startswith(prefix) and layer.name.endswith(suffix)
    }


def test_which_convolutions_are_dilated():
    trunk = build_backbone("resnet50", SIZE, last_stride=1, dilation=(2, 4))
    assert set(rates(trunk, "conv4_block", "_2_conv").values()) == {(1, 2)}
    assert set(rates(trunk, "conv5_block", "_2_conv").values()) == {(1, 4)}
    assert set(rates(trunk, "conv3_block", "_2_conv").values()) == {(1, 1)}
    assert rates(trunk, "conv4_block1_1", "conv") == {"conv4_block1_1_conv": (1, 1)}
    trunk = build_backbone("resnext50", SIZE, last_stride=1, dilation=(2, 4))
    # The block that used to downsample keeps the previous stage's rate (torchvision).
    assert rates(trunk, "conv4_block", "_2_conv") == {
        "conv4_block1_2_conv": (1, 1),
        **{f"conv4_block{b}_2_conv": (1, 2) for b in range(2, 7)},
    }
    assert rates(trunk, "conv5_block1", "_2_conv") == {"conv5_block1_2_conv": (1, 2)}
    assert rates(trunk, "conv5_block3", "_2_conv") == {"conv5_block3_2_conv": (1, 4)}
    trunk = build_backbone("bn_inception", SIZE, last_stride=1, dilation=2)
    assert rates(trunk, "inception_4e_3x3", "3x3") == {"inception_4e_3x3": (1, 1)}
    assert rates(trunk, "inception_5a_double_3x3_2", "2") == {"inception_5a_double_3x3_2": (1, 2)}
    assert rates(trunk, "inception_4d_3x3", "3x3") == {"inception_4d_3x3": (1, 1)}
    trunk = build_backbone("mobilenet", SIZE, alpha=0.25, last_stride=1, dilation=2)
    assert rates(trunk, "conv_dw_12", "12") == {"conv_dw_12": (1, 1)}
    assert rates(trunk, "conv_dw_13", "13") == {"conv_dw_13": (1, 2)}


def test_bad_stride_and_dilation_options_are_one_line():
    cases = [
        ("small_convnet", {"dilation": 2}, "small_convnet: this trunk does not support dilation"),
        ("resnet50", {"dilation": (2, 2, 2, 2)}, "can dilate at most its last 3 stage"),
        ("bn_inception", {"dilation": (2, 4, 8)}, "can dilate at most its last 2 stage"),
        ("resnet50", {"dilation": 2}, "a dilated last stage does not downsample; pass last_str"),
        ("resnext50", {"dilation": (4, 2), "last_stride": 1}, "non-decreasing tuple"),
        ("mobilenet", {"dilation": 0, "last_stride": 1}, "dilation must be an int >= 1"),
        ("resnet50", {"stages": "stage5"}, "stages must be a non-empty tuple of stage1, stage2"),
        ("bn_inception", {"weights": "imagenet"}, "bn_inception: no ImageNet download"),
        ("resnext50", {"weights": "imagenet"}, "resnext50: no ImageNet download"),
    ]
    for name, options, message in cases:
        with pytest.raises(ReIDError, match=message) as info:
            build_backbone(name, SIZE, **options)
        assert "\n" not in str(info.value), name


@pytest.mark.parametrize(
    "name,suffix",
    [("bn_inception", ".weights.h5"), ("resnext50", ".weights.h5"), ("resnext50", ".h5")],
)
def test_own_trunks_load_a_weight_file(name, suffix, tmp_path):
    check_weight_file(name, SIZE, tmp_path, suffix=suffix, last_stride=1)


def test_resnet50_loads_keras_imagenet_weight_file_layout(tmp_path):
    # keras.applications loads resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 with
    # model.load_weights(path): layers with weights in order. A random ResNet50 saved in
    # that layout stands in for it; our trunk must compute what the application does.
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=SIZE)
    x = images(SIZE)
    preprocessed = keras.applications.resnet50.preprocess_input(x.copy())
    set_bn_statistics(reference, preprocessed)  # every BN distinct, so order matters
    path = tmp_path / "resnet50_notop.h5"
    save_legacy_h5(reference, path)
    trunk = build_backbone("resnet50", SIZE, weights=str(path))
    np.testing.assert_allclose(
        np.asarray(trunk(x)), np.asarray(reference(preprocessed)), rtol=1e-5, atol=1e-5
    )
    # The dilated, last-stride-1 trunk holds the same weights (shapes do not change).
    dilated = build_backbone("resnet50", SIZE, weights=str(path), last_stride=1, dilation=(2, 4))
    for got, want in zip(dilated.layers[-1].weights, reference.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_mobilenet_imagenet_file_loads_with_last_stride_1(mobilenet_025_weights):
    reference = keras.applications.MobileNet(
        include_top=False, alpha=0.25, weights=str(mobilenet_025_weights), input_shape=(224, 224, 3)
    )
    trunk = build_backbone(
        "mobilenet", SIZE, alpha=0.25, weights=mobilenet_025_weights, last_stride=1, dilation=2
    )
    for got, want in zip(trunk.layers[-1].weights, reference.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    with pytest.raises(ReIDError, match=r"cannot load weights .* \(alpha=0.5\)"):
        build_backbone("mobilenet", SIZE, alpha=0.5, weights=mobilenet_025_weights, last_stride=1)


@pytest.mark.parametrize("application,name", [("MobileNet", "mobilenet"), ("ResNet50", "resnet50")])
def test_default_trunks_are_the_keras_applications_unchanged(application, name):
    # Checkpoints and .weights.h5 files of the previous version fit by layer order and shape.
    options = {"alpha": 0.25} if name == "mobilenet" else {}
    reference = getattr(keras.applications, application)(
        include_top=False, weights=None, input_shape=SIZE, **options
    )
    net = build_backbone(name, SIZE, **options).layers[-1]

    def layers(model):  # input layers are numbered per process: leave their names out
        return [
            (type(layer).__name__, layer.get_config())
            for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer)
        ]

    assert net.name == reference.name
    assert layers(net) == layers(reference)


def test_resnext_is_32x4d_with_the_reference_parameter_count():
    net = build_backbone("resnext50", SIZE).layers[-1]
    # torchvision's resnext50_32x4d has 25,028,904 parameters, of which the
    # 1000-way fc holds 2048 * 1000 + 1000; Keras counts BN moving statistics
    # as non-trainable weights, torchvision as buffers.
    trainable = sum(int(np.prod(w.shape)) for w in net.trainable_weights)
    assert trainable == 25_028_904 - (2048 * 1000 + 1000)
    grouped = net.get_layer("conv3_block2_2_conv")
    assert grouped.groups == 32 and tuple(grouped.kernel.shape) == (3, 3, 256 // 32, 256)


def test_bn_inception_block_widths_follow_the_paper():
    # Ioffe & Szegedy 2015, Fig. 5: output depths of the Inception blocks.
    net = build_backbone("bn_inception", (224, 224, 3)).layers[-1]
    widths = {
        "3a": (28, 256), "3b": (28, 320), "3c": (14, 576), "4a": (14, 576),
        "4b": (14, 576), "4c": (14, 576), "4d": (14, 608), "4e": (7, 1056),
        "5a": (7, 1024), "5b": (7, 1024),
    }  # fmt: skip
    for block, (size, depth) in widths.items():
        shape = net.get_layer(f"inception_{block}_output").output.shape
        assert tuple(shape[1:]) == (size, size, depth), block
    # BN after every convolution, and no convolution bias.
    convs = [layer for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(not layer.use_bias for layer in convs)
    assert all(
        isinstance(net.get_layer(f"{layer.name}_bn"), keras.layers.BatchNormalization)
        for layer in convs
    )
    # 5x5 replaced by two 3x3: no kernel larger than 3 after the 7x7 stem.
    assert {layer.kernel_size for layer in convs[1:]} == {(1, 1), (3, 3)}


@pytest.mark.parametrize("per_group", [False, True], ids=["default", "per_group"])
@pytest.mark.parametrize("strides,rate", [(1, 1), (2, 1), (1, 2)])
def test_grouped_conv_computes_what_keras_conv2d_with_groups_does(
    strides, rate, per_group, monkeypatch
):
    # The reference is Keras' own Conv2D(groups=...), values and gradients;
    # per_group forces the path taken where TensorFlow runs without oneDNN.
    if per_group:
        monkeypatch.setattr(resnext, "onednn_enabled", lambda: False)
    x = np.random.default_rng(0).normal(size=(2, 9, 7, 64)).astype("float32")
    options = {"strides": strides, "dilation_rate": rate, "groups": 32, "padding": "same"}
    if strides > 1:
        options["padding"] = "valid"
    ours, reference = GroupedConv2D(64, 3, **options), keras.layers.Conv2D(64, 3, **options)
    ours.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(ours.get_weights())
    import tensorflow as tf

    results = []
    for layer in (ours, reference):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        results.append((y, tape.gradient(loss, layer.kernel)))
    for got, want in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)
