"""Small shared checks for layers, losses and models: build, fit one step, round-trips."""

import re

import keras
import numpy as np

# The smallest trunk a training test needs where the trunk itself is not under
# test (resume, faults, run folders): traced and saved in half MobileNet's time.
TINY_TRUNK = {"backbone": "small_convnet", "backbone_options": {"widths": [8, 16]}}


def slow_except(values, kept):
    """Parametrize ``values``, each outside ``kept`` marked slow (run with ``-m slow``)."""
    import pytest

    return [v if v in kept else pytest.param(v, marks=pytest.mark.slow) for v in values]


def grouped_model(groups):
    """An EmbAE-like inference model: embedding = Dense(mean RGB), nuisance =
    GroupedDense(mean RGB, group) with ``groups`` weight sets; 32x16 images."""
    from keras_reid.layers import GroupedDense

    images = keras.Input((32, 16, 3), name="images")
    group = keras.Input((), dtype="int32", name="group")
    pooled = keras.layers.GlobalAveragePooling2D()(images)
    nuisance = GroupedDense(2, groups=groups, name="nuisance")([pooled, group])
    embedding = keras.layers.Dense(4, name="embedding")(pooled)
    return keras.Model(
        {"images": images, "group": group}, {"embedding": embedding, "nuisance": nuisance}
    )


def dense_model(input_dim, units, name="embedding"):
    """A one-Dense-layer functional model whose single output is named ``name``."""
    inputs = keras.Input((input_dim,))
    return keras.Model(inputs, keras.layers.Dense(units, name=name)(inputs))


def fit_one_step(model, x, y=None, **compile_kwargs):
    """Compile with SGD (unless given) and fit one full batch; returns the logs."""
    compile_kwargs.setdefault("optimizer", keras.optimizers.SGD(0.1))
    model.compile(**compile_kwargs)
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return {name: values[0] for name, values in history.history.items()}


def config_round_trip(obj):
    """``obj`` serialised and rebuilt without custom_objects; class and config must survive."""
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj)
    assert restored.get_config() == obj.get_config()
    return restored


def save_and_reload(model, directory, x):
    """Save to ``directory/model.keras``, reload without custom_objects, compare predictions."""
    path = directory / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        keras.tree.flatten(reloaded.predict(x, verbose=0)),
        keras.tree.flatten(model.predict(x, verbose=0)),
        rtol=1e-6,
        atol=1e-6,
    )
    return reloaded


def set_bn_statistics(model, x):
    """Set every BatchNormalization's moving statistics to its batch statistics on ``x``.

    An untrained model's inference-mode activations collapse towards zero
    (moving mean 0, variance 1 fit no layer's real inputs), so comparisons of
    its outputs pass trivially. One training-mode pass with momentum 0 makes
    the inference-mode outputs on ``x`` those of a network whose statistics
    were measured on data.
    """

    def walk(layer):
        for inner in getattr(layer, "layers", []):
            yield inner
            yield from walk(inner)

    layers = [layer for layer in walk(model) if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    return model


_FRESH_PROCESS = """
import json, sys, keras, numpy as np, keras_reid
model = keras.models.load_model(sys.argv[1])
out = model.predict(np.zeros((2, *json.loads(sys.argv[2])), "float32"), verbose=0)
print(json.dumps({k: [list(v.shape[1:]), float(np.linalg.norm(v[0]))] for k, v in out.items()}))
"""


def outputs_in_a_fresh_process(path, input_shape):
    """Load a .keras file in a new interpreter (``import keras_reid``, no custom_objects).

    Returns ``{output: (shape without the batch, norm of the first sample's output)}``
    of a prediction on zeros.
    """
    import json
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(path), json.dumps(list(input_shape))],
        capture_output=True,
        text=True,
    )
    assert loaded.returncode == 0, loaded.stderr
    outputs = json.loads(loaded.stdout.strip().splitlines()[-1])
    return {name: (tuple(shape), norm) for name, (shape, norm) in outputs.items()}


def installed_versions():
    """The versions a results file must record, read here from each module itself."""
    import platform

    import cv2
    import tensorflow as tf

    import keras_reid

    return {
        "python": platform.python_version(),
        "keras_reid": keras_reid.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }


def assert_records_versions(csv_frame, markdown=None):
    """A results CSV ends with one column per library version; its markdown names them."""
    expected = installed_versions()
    # The processor closes the record: its model, as /proc/cpuinfo names it.
    assert list(csv_frame.columns[-len(expected) - 1 :]) == [*expected, "cpu"]
    # ... then whether TensorFlow ran its oneDNN kernels, which change the numerics.
    assert all(
        re.fullmatch(re.escape(cpu_model()) + r"( \(\w+\))?, oneDNN (on|off)", str(cpu))
        for cpu in csv_frame["cpu"]
    ), set(csv_frame["cpu"])
    for name, version in expected.items():
        for found in csv_frame[name].astype(str):
            # OpenCV's distribution adds its build to the module's version (5.1.0.95).
            assert found == version or found.startswith(version + "."), (name, found, version)
    if markdown is None:
        return
    line = markdown.rstrip("\n").splitlines()[-1]
    for name, version in expected.items():
        assert f"{name.replace('_', '-')} {version}" in line, line
    assert f", cpu {cpu_model()}" in line, line


def cpu_model():
    """The processor's model name, read with lscpu (not /proc/cpuinfo, as the code does)."""
    import platform
    import shutil
    import subprocess

    if shutil.which("lscpu") is None:  # not Linux: the code reads platform.processor() too
        return platform.processor() or platform.machine()
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    return next(
        line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name:")
    )
