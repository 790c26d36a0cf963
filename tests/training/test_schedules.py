import math

import keras
import pytest

from keras_reid.errors import ReIDError
from keras_reid.training.schedules import (
    SCHEDULES,
    ExponentialDecayAfter,
    LinearWarmup,
    Piecewise,
    StepDecay,
    build_schedule,
)


def test_constant_then_exponential_decay_to_final_rate():
    schedule = ExponentialDecayAfter(
        steps_per_epoch=10, base_lr=1e-4, final_lr=1e-7, decay_start_epoch=100, decay_end_epoch=400
    )
    lr = lambda epoch: float(schedule(int(epoch * 10)))
    assert lr(0) == pytest.approx(1e-4)
    assert lr(100) == pytest.approx(1e-4)
    # Halfway through the decay the rate is the geometric mean of 1e-4 and 1e-7.
    assert lr(250) == pytest.approx(math.sqrt(1e-4 * 1e-7), rel=1e-4)
    assert lr(400) == pytest.approx(1e-7, rel=1e-4)
    assert lr(500) == pytest.approx(1e-7, rel=1e-4)


def test_round_trip_and_bad_arguments():
    schedule = ExponentialDecayAfter(steps_per_epoch=3, decay_start_epoch=1, decay_end_epoch=2)
    clone = ExponentialDecayAfter.from_config(schedule.get_config())
    assert float(clone(4)) == pytest.approx(float(schedule(4)))
    with pytest.raises(ValueError, match="Received: steps_per_epoch=0"):
        ExponentialDecayAfter(steps_per_epoch=0)
    with pytest.raises(ValueError, match="decay_start_epoch=5, decay_end_epoch=5"):
        ExponentialDecayAfter(steps_per_epoch=1, decay_start_epoch=5, decay_end_epoch=5)


def rates(schedule, steps):
    return [float(schedule(step)) for step in steps]


def test_piecewise_msml_rates_at_just_before_and_just_after_each_boundary():
    # MSML: 1e-3 for 50 epochs, 1e-4 to epoch 200, 1e-5 after; 7 steps an epoch.
    schedule = Piecewise(steps_per_epoch=7, boundaries=[50, 200], values=[1e-3, 1e-4, 1e-5])
    # Step 350 is the first step of epoch 50 (0-based): the first at the new rate.
    got = rates(schedule, [0, 349, 350, 351, 1399, 1400, 1401, 10**6])
    expected = [1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-5, 1e-5, 1e-5]
    assert got == pytest.approx(expected, rel=1e-6)


def test_piecewise_fractional_boundary_in_steps():
    # Boundary at epoch 0.5 with 3 steps an epoch is step 1.5: step 1 before, step 2 after.
    schedule = Piecewise(steps_per_epoch=3, boundaries=[0.5], values=[2.0, 1.0])
    assert rates(schedule, [0, 1, 2, 3]) == [2.0, 2.0, 1.0, 1.0]


def test_step_decay_sal_tenfold_every_50_epochs():
    schedule = StepDecay(steps_per_epoch=4, base_lr=0.01, gamma=0.1, step_epochs=50)
    got = rates(schedule, [0, 199, 200, 201, 399, 400, 401])
    expected = [0.01, 0.01, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4]
    assert got == pytest.approx(expected, rel=1e-6)


def test_linear_warmup_ramps_from_start_factor_then_follows_the_schedule():
    base = Piecewise(steps_per_epoch=2, boundaries=[3], values=[1.0, 0.5])
    # Two warm-up epochs are 4 steps: factor 0.2 + 0.8 * step / 4.
    schedule = LinearWarmup(base, steps_per_epoch=2, warmup_epochs=2, start_factor=0.2)
    got = rates(schedule, [0, 1, 2, 3, 4, 5, 6, 7])
    expected = [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.5, 0.5]
    assert got == pytest.approx(expected, rel=1e-6)


def test_build_schedule_names_arguments_and_warmup():
    assert list(SCHEDULES) == ["exponential_after", "piecewise", "step"]
    plain = build_schedule("step", steps_per_epoch=2, base_lr=1.0, gamma=0.5, step_epochs=1)
    assert isinstance(plain, StepDecay)
    assert rates(plain, [0, 1, 2, 4]) == [1.0, 1.0, 0.5, 0.25]
    warm = build_schedule(
        "step", steps_per_epoch=2, warmup_epochs=1, base_lr=1.0, gamma=0.5, step_epochs=1
    )
    assert isinstance(warm, LinearWarmup)
    # Default start factor 0.1: 0.1 + 0.9 * step / 2 during the first epoch.
    assert rates(warm, [0, 1, 2]) == pytest.approx([0.1, 0.55, 0.5], rel=1e-6)
    after = build_schedule("exponential_after", 10, base_lr=1e-4, final_lr=1e-7)
    assert isinstance(after, ExponentialDecayAfter)
    with pytest.raises(ReIDError, match="unknown schedule 'cosine'; expected one of: "):
        build_schedule("cosine", 10)
    with pytest.raises(ReIDError, match=r"schedule 'step'.*gama.*expected.*gamma"):
        build_schedule("step", 10, base_lr=1.0, gama=0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"boundaries": [50, 50], "values": [1, 2, 3]},
            r"boundaries must increase.*Received: boundaries=\[50, 50\]",
        ),
        ({"boundaries": [0, 5], "values": [1, 2, 3]}, r"Received: boundaries=\[0, 5\]"),
        (
            {"boundaries": [50], "values": [1e-3, 1e-4, 1e-5]},
            r"one more value than boundaries.*boundaries=\[50\], values=\[0.001, 0.0001, 1e-05\]",
        ),
        ({"boundaries": [5], "values": [1e-3, -1e-4]}, r"Received: values=\[0.001, -0.0001\]"),
        ({"boundaries": [5], "values": [1e-3, "x"]}, r"Received: values=\[0.001, 'x'\]"),
        ({"boundaries": 5, "values": [1.0, 2.0]}, r"Received: boundaries=5"),
    ],
)
def test_piecewise_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ReIDError, match=message) as error:
        Piecewise(steps_per_epoch=1, **kwargs)
    assert "\n" not in str(error.value)


def test_step_and_warmup_bad_arguments():
    with pytest.raises(ReIDError, match="Received: base_lr=-0.1"):
        StepDecay(steps_per_epoch=1, base_lr=-0.1)
    with pytest.raises(ReIDError, match="Received: gamma=0"):
        StepDecay(steps_per_epoch=1, base_lr=0.1, gamma=0)
    with pytest.raises(ReIDError, match="Received: step_epochs=0"):
        StepDecay(steps_per_epoch=1, base_lr=0.1, step_epochs=0)
    with pytest.raises(ReIDError, match="Received: steps_per_epoch=0"):
        Piecewise(steps_per_epoch=0, boundaries=[1], values=[1.0, 0.5])
    base = StepDecay(steps_per_epoch=1, base_lr=0.1)
    with pytest.raises(ReIDError, match="Received: warmup_start_factor=1.5"):
        build_schedule("step", 1, warmup_epochs=1, warmup_start_factor=1.5, base_lr=0.1)
    with pytest.raises(ReIDError, match="Received: warmup_epochs=-1"):
        LinearWarmup(base, steps_per_epoch=1, warmup_epochs=-1)


def test_new_schedules_round_trip_through_keras_serialisation():
    schedules = [
        Piecewise(steps_per_epoch=3, boundaries=[1, 2.5], values=[0.3, 0.2, 0.1]),
        StepDecay(steps_per_epoch=3, base_lr=0.2, gamma=0.5, step_epochs=2),
        LinearWarmup(
            StepDecay(steps_per_epoch=3, base_lr=0.2, gamma=0.5, step_epochs=2),
            steps_per_epoch=3,
            warmup_epochs=1.5,
            start_factor=0.25,
        ),
    ]
    for schedule in schedules:
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(schedule)
        )
        assert type(restored) is type(schedule)
        assert restored.get_config() == schedule.get_config()
        assert rates(restored, range(0, 20)) == rates(schedule, range(0, 20))
    # Inside an optimizer, as a .keras file stores it.
    optimizer = keras.optimizers.Adam(schedules[2])
    clone = keras.optimizers.Adam.from_config(optimizer.get_config())
    assert rates(clone._learning_rate, range(10)) == rates(schedules[2], range(10))
