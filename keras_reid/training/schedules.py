"""Learning-rate schedules of the papers, and the ``schedule`` config section.

Every schedule takes ``steps_per_epoch`` and is written in epochs; it is
called with the optimizer's step count (``optimizer.iterations``, 0 for the
first step), so step ``t`` belongs to epoch ``t / steps_per_epoch``.

``SCHEDULES`` maps the config names to the classes:

- ``exponential_after``: :class:`ExponentialDecayAfter` (TriNet, EmbAE);
- ``piecewise``: :class:`Piecewise` (MSML: 1e-3, 1e-4 from epoch 50, 1e-5 from 200);
- ``step``: :class:`StepDecay` (self-attention learning: x0.1 every 50 epochs);

and :func:`build_schedule` adds an optional :class:`LinearWarmup` to any of them.
"""

import math
import operator

import keras
from keras import ops

from keras_reid.checks import is_number
from keras_reid.errors import ReIDError
from keras_reid.registry import Registry, accepted_keys

SCHEDULES = Registry("schedule")


@SCHEDULES.register("exponential_after")
@keras.saving.register_keras_serializable(package="keras_reid")
class ExponentialDecayAfter(keras.optimizers.schedules.LearningRateSchedule):
    """Constant rate, then exponential decay to a final rate (TriNet; EmbAE paper, Sec. 4.2).

    ``lr(t) = base_lr`` for ``t <= decay_start``, then
    ``base_lr * (final_lr / base_lr) ** ((t - decay_start) / (decay_end - decay_start))``,
    held at ``final_lr`` after ``decay_end`` (t in epochs, fractional within an epoch).

    Args:
        steps_per_epoch: optimizer steps per epoch (images / (P*K)).
        base_lr: 1e-4 in the EmbAE paper (Adam).
        final_lr: 1e-7.
        decay_start_epoch: 100.
        decay_end_epoch: 400.

    Example:
        >>> schedule = ExponentialDecayAfter(steps_per_epoch=100)
        >>> optimizer = keras.optimizers.Adam(schedule)
    """

    def __init__(
        self,
        steps_per_epoch,
        base_lr=1e-4,
        final_lr=1e-7,
        decay_start_epoch=100,
        decay_end_epoch=400,
    ):
        if steps_per_epoch < 1:
            raise ValueError(
                f"steps_per_epoch must be >= 1. Received: steps_per_epoch={steps_per_epoch}"
            )
        if not 0 < final_lr <= base_lr:
            raise ValueError(
                f"need 0 < final_lr <= base_lr. Received: base_lr={base_lr}, final_lr={final_lr}"
            )
        if not 0 <= decay_start_epoch < decay_end_epoch:
            raise ValueError(
                "need 0 <= decay_start_epoch < decay_end_epoch. Received: "
                f"decay_start_epoch={decay_start_epoch}, decay_end_epoch={decay_end_epoch}"
            )
        self.steps_per_epoch = int(steps_per_epoch)
        self.base_lr = float(base_lr)
        self.final_lr = float(final_lr)
        self.decay_start_epoch = decay_start_epoch
        self.decay_end_epoch = decay_end_epoch

    def __call__(self, step):
        epoch = ops.cast(step, "float32") / self.steps_per_epoch
        progress = (epoch - self.decay_start_epoch) / (
            self.decay_end_epoch - self.decay_start_epoch
        )
        progress = ops.clip(progress, 0.0, 1.0)
        return self.base_lr * ops.power(self.final_lr / self.base_lr, progress)

    def get_config(self):
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "base_lr": self.base_lr,
            "final_lr": self.final_lr,
            "decay_start_epoch": self.decay_start_epoch,
            "decay_end_epoch": self.decay_end_epoch,
        }


def _is_number(value):
    return is_number(value) and math.isfinite(value)


def _check_steps_per_epoch(steps_per_epoch):
    try:
        steps = operator.index(steps_per_epoch)  # int or numpy integer
    except TypeError:
        steps = 0
    if isinstance(steps_per_epoch, bool) or steps < 1:
        raise ReIDError(
            "steps_per_epoch must be an integer >= 1 (images / batch size). "
            f"Received: steps_per_epoch={steps_per_epoch!r}"
        )
    return steps


def _check_rate(name, value):
    if not _is_number(value) or value < 0:
        raise ReIDError(
            f"{name} must be a learning rate, a number >= 0. Received: {name}={value!r}"
        )
    return float(value)


@SCHEDULES.register("piecewise")
@keras.saving.register_keras_serializable(package="keras_reid")
class Piecewise(keras.optimizers.schedules.LearningRateSchedule):
    """Constant rates between epoch boundaries (MSML paper, Sec. 4.2).

    ``lr = values[i]`` for epochs in ``[boundaries[i-1], boundaries[i])``: the
    first step of epoch ``boundaries[i]`` (0-based) is the first at
    ``values[i + 1]``. In steps, step ``t`` takes the new rate once
    ``t >= boundary * steps_per_epoch`` (boundaries may be fractional).

    Args:
        steps_per_epoch: optimizer steps per epoch (images / batch size).
        boundaries: increasing epochs > 0 where the rate changes, e.g. ``[50, 200]``.
        values: the rates, one more than ``boundaries``, each >= 0,
            e.g. ``[1e-3, 1e-4, 1e-5]`` (MSML: Adam at 1e-3 for 50 epochs,
            1e-4 to epoch 200, 1e-5 after).

    Example:
        >>> schedule = Piecewise(100, boundaries=[50, 200], values=[1e-3, 1e-4, 1e-5])
        >>> float(schedule(5000))  # epoch 50
        0.0001
    """

    def __init__(self, steps_per_epoch, boundaries, values):
        self.steps_per_epoch = _check_steps_per_epoch(steps_per_epoch)
        if not isinstance(boundaries, (list, tuple)) or not all(map(_is_number, boundaries)):
            raise ReIDError(
                "boundaries must be a list of epochs (numbers). "
                f"Received: boundaries={boundaries!r}"
            )
        if not isinstance(values, (list, tuple)) or not all(map(_is_number, values)):
            raise ReIDError(
                f"values must be a list of learning rates (numbers). Received: values={values!r}"
            )
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ReIDError(
                "piecewise needs one more value than boundaries (the rate before the first "
                f"boundary, then one per boundary). Received: boundaries={boundaries}, "
                f"values={values}"
            )
        if any(b <= a for a, b in zip([0, *boundaries], boundaries, strict=False)):
            raise ReIDError(
                "piecewise boundaries must increase, each an epoch > 0 (e.g. [50, 200]). "
                f"Received: boundaries={boundaries}"
            )
        if any(value < 0 for value in values):
            raise ReIDError(f"piecewise values must be rates >= 0. Received: values={values}")
        self.boundaries = boundaries
        self.values = [float(value) for value in values]

    def __call__(self, step):
        step = ops.cast(step, "float32")
        boundary_steps = ops.convert_to_tensor(
            [b * self.steps_per_epoch for b in self.boundaries], "float32"
        )
        index = ops.sum(ops.cast(ops.greater_equal(step, boundary_steps), "int32"))
        return ops.take(ops.convert_to_tensor(self.values, "float32"), index)

    def get_config(self):
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "boundaries": self.boundaries,
            "values": self.values,
        }


@SCHEDULES.register("step")
@keras.saving.register_keras_serializable(package="keras_reid")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The rate times ``gamma`` every ``step_epochs`` epochs (self-attention learning, SGD).

    ``lr = base_lr * gamma ** floor(epoch / step_epochs)``, the epoch counted
    from 0 (step ``t`` is in epoch ``t / steps_per_epoch``).

    Args:
        steps_per_epoch: optimizer steps per epoch.
        base_lr: the rate of the first ``step_epochs`` epochs, >= 0.
        gamma: the factor at each step, > 0; 0.1 by default.
        step_epochs: epochs between two changes, > 0; 50 by default.

    Example:
        >>> schedule = StepDecay(100, base_lr=0.01)  # x0.1 every 50 epochs
        >>> round(float(schedule(5000)), 6)  # epoch 50
        0.001
    """

    def __init__(self, steps_per_epoch, base_lr, gamma=0.1, step_epochs=50):
        self.steps_per_epoch = _check_steps_per_epoch(steps_per_epoch)
        self.base_lr = _check_rate("base_lr", base_lr)
        if not _is_number(gamma) or gamma <= 0:
            raise ReIDError(
                "gamma must be a factor > 0 (0.1 divides the rate by 10). "
                f"Received: gamma={gamma!r}"
            )
        if not _is_number(step_epochs) or step_epochs <= 0:
            raise ReIDError(
                f"step_epochs must be a number of epochs > 0. Received: step_epochs={step_epochs!r}"
            )
        self.gamma = float(gamma)
        self.step_epochs = step_epochs

    def __call__(self, step):
        period = float(self.step_epochs * self.steps_per_epoch)
        changes = ops.floor(ops.cast(step, "float32") / period)
        return self.base_lr * ops.power(self.gamma, changes)

    def get_config(self):
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "base_lr": self.base_lr,
            "gamma": self.gamma,
            "step_epochs": self.step_epochs,
        }


@keras.saving.register_keras_serializable(package="keras_reid")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up in front of any schedule.

    During the first ``warmup_epochs`` epochs (``W`` steps) the rate is the
    wrapped schedule's times ``start_factor + (1 - start_factor) * t / W``,
    rising from ``start_factor`` times the rate at step 0 to the full rate
    at step ``W``; after that it is the wrapped schedule's.

    Args:
        schedule: the LearningRateSchedule to warm up.
        steps_per_epoch: optimizer steps per epoch.
        warmup_epochs: length of the warm-up in epochs, >= 0 (fractions allowed).
        start_factor: the factor at step 0, in [0, 1]; 0.1 by default.

    Example:
        >>> schedule = LinearWarmup(StepDecay(100, base_lr=0.01), 100, warmup_epochs=5)
        >>> round(float(schedule(0)), 6)
        0.001
    """

    def __init__(self, schedule, steps_per_epoch, warmup_epochs, start_factor=0.1):
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise ReIDError(
                f"LinearWarmup wraps a LearningRateSchedule. Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.steps_per_epoch = _check_steps_per_epoch(steps_per_epoch)
        if not _is_number(warmup_epochs) or warmup_epochs < 0:
            raise ReIDError(
                "warmup_epochs must be a number of epochs >= 0. "
                f"Received: warmup_epochs={warmup_epochs!r}"
            )
        if not _is_number(start_factor) or not 0 <= start_factor <= 1:
            raise ReIDError(
                "warmup_start_factor must be in [0, 1] (the share of the rate at step 0). "
                f"Received: warmup_start_factor={start_factor!r}"
            )
        self.warmup_epochs = warmup_epochs
        self.start_factor = float(start_factor)

    def __call__(self, step):
        rate = self.schedule(step)
        warmup_steps = float(self.warmup_epochs * self.steps_per_epoch)
        if warmup_steps == 0:
            return rate
        progress = ops.minimum(ops.cast(step, "float32") / warmup_steps, 1.0)
        return rate * (self.start_factor + (1.0 - self.start_factor) * progress)

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_epochs": self.warmup_epochs,
            "start_factor": self.start_factor,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def build_schedule(name, steps_per_epoch, warmup_epochs=0, warmup_start_factor=0.1, **args):
    """The ``schedule`` config section: a registered schedule, optionally warmed up.

    Args:
        name: ``exponential_after``, ``piecewise`` or ``step`` (see :data:`SCHEDULES`).
        steps_per_epoch: optimizer steps per epoch (filled in by the recipe).
        warmup_epochs: epochs of linear warm-up (:class:`LinearWarmup`); 0 (default): none.
        warmup_start_factor: the warm-up's factor at step 0, in [0, 1]; 0.1 by default.
        **args: the schedule's own arguments (``boundaries``, ``values``; ``base_lr``,
            ``gamma``, ``step_epochs``; ...); unknown ones are an error listing the valid ones.

    Example:
        >>> schedule = build_schedule(
        ...     "piecewise", steps_per_epoch=100, boundaries=[50, 200], values=[1e-3, 1e-4, 1e-5]
        ... )
        >>> optimizer = keras.optimizers.Adam(schedule)
    """
    schedule_class = SCHEDULES.check(
        name, args, exclude=("steps_per_epoch",), extra=("warmup_epochs", "warmup_start_factor")
    )
    try:
        schedule = schedule_class(steps_per_epoch, **args)
    except TypeError as error:  # a required argument is missing, or a value of the wrong type
        valid = accepted_keys(schedule_class, exclude=("steps_per_epoch",))
        given = ", ".join(f"{k}={v!r}" for k, v in args.items()) or "none"
        raise ReIDError(
            f"schedule {name!r}: {error}; expected: {', '.join(valid)}. Received: {given}"
        ) from None
    if warmup_epochs == 0:
        if not _is_number(warmup_start_factor) or not 0 <= warmup_start_factor <= 1:
            raise ReIDError(
                "warmup_start_factor must be in [0, 1] (the share of the rate at step 0). "
                f"Received: warmup_start_factor={warmup_start_factor!r}"
            )
        return schedule
    return LinearWarmup(schedule, steps_per_epoch, warmup_epochs, warmup_start_factor)
