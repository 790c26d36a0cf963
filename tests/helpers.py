"""Small shared checks for layers, losses and models: build, fit one step, round-trips."""

import keras
import numpy as np


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
