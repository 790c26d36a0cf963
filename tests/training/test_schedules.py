import math

import pytest

from keras_reid.training.schedules import ExponentialDecayAfter


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
