import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_reid.errors import ReIDError
from keras_reid.training.optimizers import LayerwiseOptimizer, build_optimizer, variable_paths
from keras_reid.training.schedules import Piecewise
from keras_reid.training.state import RunState

# A nested trunk (two Dense blocks) and two heads: 8 trainable variables.
PATHS = [
    "trunk/block1/kernel",
    "trunk/block1/bias",
    "trunk/block2/kernel",
    "trunk/block2/bias",
    "embedding/kernel",
    "embedding/bias",
    "logits/kernel",
    "logits/bias",
]


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="relu", name="block1")(inputs)
    hidden = keras.layers.Dense(5, activation="relu", name="block2")(hidden)
    trunk = keras.Model(inputs, hidden, name="trunk")
    images = keras.Input((6,), name="images")
    features = trunk(images)
    outputs = {
        "embedding": keras.layers.Dense(3, name="embedding")(features),
        "logits": keras.layers.Dense(4, name="logits")(features),
    }
    return keras.Model(images, outputs, name="tiny")


def data(steps=1, batch=8, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps * batch, 6)).astype("float32")
    y = {
        "embedding": rng.normal(size=(steps * batch, 3)).astype("float32"),
        "logits": rng.normal(size=(steps * batch, 4)).astype("float32"),
    }
    return x, y


def compiled(model, optimizer):
    model.compile(optimizer=optimizer, loss={"embedding": "mse", "logits": "mse"})
    return model


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def random_grads(model, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables]


def test_model_paths_name_nested_layers_after_their_model():
    assert variable_paths(tiny_model()) == PATHS


def test_without_multipliers_the_plain_keras_optimizer_is_returned():
    optimizer = build_optimizer(tiny_model(), 0.1, "sgd", momentum=0.9, nesterov=True)
    assert type(optimizer) is keras.optimizers.SGD
    assert (optimizer.momentum, optimizer.nesterov) == (0.9, True)
    assert type(build_optimizer(None, 1e-3)) is keras.optimizers.Adam
    assert type(build_optimizer(None, 1e-3, "adamw", lr_multipliers={})) is keras.optimizers.AdamW


def test_sgd_factor_10_moves_a_module_ten_times_as_far_longest_prefix_winning():
    model = tiny_model()
    multipliers = {"trunk": 10, "trunk/block2": 0.5, "logit": 0}
    optimizer = build_optimizer(model, 0.01, "sgd", lr_multipliers=multipliers)
    assert isinstance(optimizer, LayerwiseOptimizer)
    before = values(model.trainable_variables)
    grads = random_grads(model, seed=2)
    optimizer.apply(grads, model.trainable_variables)
    after = values(model.trainable_variables)
    # Plain SGD by hand: w - lr * factor * g, per the longest matching prefix.
    factors = [10, 10, 0.5, 0.5, 1, 1, 0, 0]
    for path, factor, w0, w1, g in zip(PATHS, factors, before, after, grads, strict=True):
        step = w0.astype("float64") - w1.astype("float64")
        np.testing.assert_allclose(step, 0.01 * factor * g, rtol=1e-4, atol=1e-7, err_msg=path)
    # The frozen head is bit-identical.
    for w0, w1 in zip(before[6:], after[6:], strict=True):
        np.testing.assert_array_equal(w1, w0)
    assert int(optimizer.iterations) == 1
    # A new base rate (as Keras' LearningRateScheduler sets it) reaches every group.
    optimizer.learning_rate = 0.02
    optimizer.apply(grads, model.trainable_variables)
    again = values(model.trainable_variables)
    for path, factor, w1, w2, g in zip(PATHS, factors, after, again, grads, strict=True):
        step = w1.astype("float64") - w2.astype("float64")
        np.testing.assert_allclose(step, 0.02 * factor * g, rtol=1e-4, atol=1e-7, err_msg=path)


def test_adam_with_factor_f_is_adam_at_f_times_the_scheduled_rate():
    model = tiny_model()
    rates = [1e-2, 1e-3]
    schedule = Piecewise(steps_per_epoch=1, boundaries=[2], values=rates)
    multipliers = {"trunk": 0.25, "logits": 4}
    optimizer = build_optimizer(model, schedule, "adam", lr_multipliers=multipliers, beta_1=0.8)
    # The reference: three plain Adams on copies, at the scaled schedules.
    copies = [keras.Variable(v) for v in values(model.trainable_variables)]
    references = [
        (keras.optimizers.Adam(Piecewise(1, [2], [r * f for r in rates]), beta_1=0.8), indices)
        for f, indices in ((0.25, range(0, 4)), (1, range(4, 6)), (4, range(6, 8)))
    ]
    for step in range(4):  # across the boundary: the groups follow the schedule
        grads = random_grads(model, seed=step)
        optimizer.apply(grads, model.trainable_variables)
        for reference, indices in references:
            reference.apply([grads[i] for i in indices], [copies[i] for i in indices])
    # Factors that are powers of two scale the float32 rate exactly: bit-identical.
    for path, got, expected in zip(PATHS, model.trainable_variables, copies, strict=True):
        np.testing.assert_array_equal(values([got])[0], values([expected])[0], err_msg=path)
    assert int(optimizer.iterations) == 4
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)


def test_weight_decay_scales_with_the_factor_and_honours_exclusions():
    model = tiny_model()
    optimizer = build_optimizer(
        model, 0.1, "sgd", weight_decay=0.5, lr_multipliers={"trunk": 2, "logits": 0}
    )
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    for variable, value in zip(model.trainable_variables, random_grads(model, 3), strict=True):
        variable.assign(value)  # non-zero biases too
    before = values(model.trainable_variables)
    optimizer.apply([np.zeros(v.shape, "float32") for v in before], model.trainable_variables)
    after = values(model.trainable_variables)
    # Decoupled decay with zero gradients: w * (1 - wd * lr * factor); biases excluded.
    factors = [2, 2, 2, 2, 1, 1, 0, 0]
    for path, factor, w0, w1 in zip(PATHS, factors, before, after, strict=True):
        shrink = 1 if path.endswith("bias") else 1 - 0.5 * 0.1 * factor
        np.testing.assert_allclose(w1, w0 * shrink, rtol=1e-6, err_msg=path)


def test_global_clipnorm_clips_over_every_group_at_once():
    model = tiny_model()
    optimizer = build_optimizer(
        model, 0.1, "sgd", global_clipnorm=1.0, lr_multipliers={"trunk": 2, "logits": 0}
    )
    before = values(model.trainable_variables)
    grads = random_grads(model, seed=4)
    norm = np.sqrt(sum(float(np.sum(g.astype("float64") ** 2)) for g in grads))
    assert norm > 2  # so that clipping matters
    optimizer.apply(grads, model.trainable_variables)
    factors = [2, 2, 2, 2, 1, 1, 0, 0]
    for path, factor, w0, w1, g in zip(
        PATHS, factors, before, values(model.trainable_variables), grads, strict=True
    ):
        step = w0.astype("float64") - w1.astype("float64")
        np.testing.assert_allclose(
            step, 0.1 * factor * g / norm, rtol=1e-4, atol=1e-7, err_msg=path
        )


def test_factor_zero_freezes_a_module_and_its_slots_through_fit():
    model = tiny_model()
    # AdamW: its weight decay must not touch the frozen module either.
    optimizer = build_optimizer(
        model, 1e-2, "adamw", weight_decay=0.5, lr_multipliers={"trunk": 0, "logits": 0.1}
    )
    compiled(model, optimizer)
    trunk_before = values(model.get_layer("trunk").trainable_variables)
    head_before = values(model.get_layer("embedding").trainable_variables)
    x, y = data(steps=5)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    trunk_after = values(model.get_layer("trunk").trainable_variables)
    for got, expected in zip(trunk_after, trunk_before, strict=True):
        np.testing.assert_array_equal(got, expected)
    head_after = values(model.get_layer("embedding").trainable_variables)
    for got, expected in zip(head_after, head_before, strict=True):
        assert np.abs(got - expected).max() > 1e-4
    assert int(optimizer.iterations) == 5
    assert optimizer.factors == {0.0: 4, 1.0: 2, 0.1: 2}
    # Slots (momentum, velocity) for the 4 trained variables only, after iterations and the rate.
    slot_shapes = [tuple(v.shape) for v in optimizer.variables[2:]]
    trained = [tuple(v.shape) for v in model.trainable_variables[4:]]
    assert sorted(slot_shapes) == sorted(trained * 2)


def test_bad_arguments_are_one_line_errors_naming_the_value():
    model = tiny_model()
    cases = [
        (
            {"lr_multipliers": {"trnk": 0.1}},
            r"prefix 'trnk' matches no trainable layer of model 'tiny', whose top-level "
            r"layers with weights are: trunk, embedding, logits \(a layer inside a nested model "
            r"is named '<model>/<layer>', e.g. 'trunk/block1'\)\. "
            r"Received: lr_multipliers=\{'trnk': 0.1\}",
        ),
        ({"lr_multipliers": {"trunk": -1}}, r"lr_multipliers\['trunk'\] must be a factor >= 0"),
        ({"lr_multipliers": {"trunk": "x"}}, r"Received: lr_multipliers=\{'trunk': 'x'\}"),
        ({"name": "rmsprop"}, "unknown optimizer 'rmsprop'; expected one of: adam, adamw, sgd"),
        (
            {"name": "sgd", "beta_1": 0.9},
            r"optimizer 'sgd' takes no argument\(s\) beta_1; expected some of: momentum, "
            r"nesterov, .*Received: beta_1=0.9",
        ),
        ({"clipnorm": 1.0, "clipvalue": 1.0}, "optimizer 'adam': Only one of `clipnorm`"),
        ({"learning_rate": "1e-3"}, "Received: learning_rate='1e-3'"),
        ({"learning_rate": -0.1}, "Received: learning_rate=-0.1"),
    ]
    for kwargs, message in cases:
        kwargs = {"learning_rate": 1e-3, **kwargs}
        with pytest.raises(ReIDError, match=message) as error:
            build_optimizer(model, **kwargs)
        assert "\n" not in str(error.value)
    with pytest.raises(ReIDError, match="not supported together with lr_multipliers"):
        build_optimizer(model, 1e-3, gradient_accumulation_steps=2, lr_multipliers={"trunk": 0.1})


def test_an_optimizer_made_for_another_model_is_refused_at_build():
    optimizer = build_optimizer(tiny_model(), 1e-3, lr_multipliers={"trunk": 0.1})
    other = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, name="dense")])
    with pytest.raises(ReIDError, match="made for a model with 8 trainable variables, not 2"):
        other.compile(optimizer=optimizer, loss="mse")
        other.fit(np.zeros((2, 6)), np.zeros((2, 2)), verbose=0)


def test_keras_file_round_trip_keeps_groups_state_and_next_step(tmp_path):
    model = tiny_model()
    schedule = Piecewise(steps_per_epoch=2, boundaries=[1], values=[1e-2, 1e-3])
    optimizer = build_optimizer(model, schedule, "sgd", momentum=0.9, lr_multipliers={"trunk": 0.5})
    compiled(model, optimizer)
    x, y = data(steps=3)
    model.fit(x[:16], {k: v[:16] for k, v in y.items()}, batch_size=8, verbose=0, shuffle=False)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    loaded = reloaded.optimizer
    assert isinstance(loaded, LayerwiseOptimizer)
    assert loaded.lr_multipliers == {"trunk": 0.5}
    assert loaded.factors == {0.5: 4, 1.0: 4}
    assert int(loaded.iterations) == 2
    for got, expected in zip(values(loaded.variables), values(optimizer.variables), strict=True):
        np.testing.assert_array_equal(got, expected)
    # The third step (after the boundary, with momentum) is the same on both.
    batch = x[16:], {k: v[16:] for k, v in y.items()}
    model.train_on_batch(*batch)
    reloaded.train_on_batch(*batch)
    for got, expected in zip(reloaded.trainable_variables, model.trainable_variables, strict=True):
        np.testing.assert_array_equal(values([got])[0], values([expected])[0])


def test_run_state_backup_restores_every_group_and_the_next_step(tmp_path):
    def setup(seed):
        model = tiny_model(seed)
        optimizer = build_optimizer(model, 1e-2, "adam", lr_multipliers={"trunk": 0.5, "logits": 2})
        return compiled(model, optimizer)

    x, y = data(steps=4)
    first = setup(seed=0)
    state = RunState(str(tmp_path), steps_per_epoch=3)
    first.fit(
        x[:24], {k: v[:24] for k, v in y.items()}, batch_size=8, verbose=0, shuffle=False,
        callbacks=[state],
    )  # fmt: skip
    # A fresh process would build another model and optimizer, then restore.
    second = setup(seed=5)
    assert RunState(str(tmp_path), steps_per_epoch=3).restore(second) == 3
    assert int(second.optimizer.iterations) == 3
    batch = x[24:], {k: v[24:] for k, v in y.items()}
    first.train_on_batch(*batch)
    second.train_on_batch(*batch)
    for got, expected in zip(
        values(second.variables + second.optimizer.variables),
        values(first.variables + first.optimizer.variables),
        strict=True,
    ):
        np.testing.assert_array_equal(got, expected)


def test_fit_under_a_one_replica_mirrored_strategy_matches_plain_fit():
    x, y = data(steps=3)

    def train():
        model = tiny_model()
        optimizer = build_optimizer(model, 1e-2, "sgd", lr_multipliers={"trunk": 0, "logits": 3})
        compiled(model, optimizer)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return model

    plain = train()
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        mirrored = train()
    assert values([mirrored.optimizer.iterations])[0] == 3
    for got, expected in zip(mirrored.trainable_variables, plain.trainable_variables, strict=True):
        np.testing.assert_allclose(values([got])[0], values([expected])[0], rtol=1e-5, atol=1e-6)
    frozen = tiny_model().get_layer("trunk").trainable_variables
    for got, expected in zip(mirrored.get_layer("trunk").trainable_variables, frozen, strict=True):
        np.testing.assert_array_equal(values([got])[0], values([expected])[0])
