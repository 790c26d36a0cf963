"""Learning-rate schedules of the papers."""

import keras
from keras import ops


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
