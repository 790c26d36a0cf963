"""What every paper's training shares: runtime set-up, callbacks, and ``model.fit``.

``model.fit`` with callbacks is the training loop. This module adds the parts a
re-ID run needs around it: seeds, ``tf.distribute``, mixed precision, logs
(CSV, TensorBoard), ``.keras`` checkpoints, resumption after an interruption,
a validation callback scoring Rank-1/mAP, and a clear stop on a NaN loss.
"""

import contextlib
import glob
import logging
import math
import os
from dataclasses import dataclass

import keras
import tensorflow as tf

from keras_reid.errors import ReIDError

logger = logging.getLogger("keras_reid.training")


@dataclass
class TrainOptions:
    """The ``train`` section of a config.

    Attributes:
        epochs: epochs to train (an epoch is images / (P*K) steps).
        seed: seeds Python, NumPy, TensorFlow and the batch sampler; a CPU run
            with the same seed repeats.
        distribute: None, or "mirrored" for ``tf.distribute.MirroredStrategy``
            over every local GPU (or CPU devices); each replica gets whole P*K groups.
        mixed_precision: compute in float16 on a GPU (bfloat16 on a CPU).
        backup_steps: steps between the resumable backups of ``BackupAndRestore``
            (None: at every epoch end). An interrupted epoch restarts from the
            backed-up weights and optimizer step, so no finished step is lost.
        checkpoint_every: epochs between ``.keras`` checkpoints (the last epoch
            is always saved as ``model.keras``).
        validate_every: epochs between Rank-1/mAP validations (0: never).
        verbose: Keras' progress output (1 bars, 2 one line per epoch, 0 silent).
    """

    epochs: int = 400
    seed: int = 0
    distribute: str | None = None
    mixed_precision: bool = False
    backup_steps: int | None = None
    checkpoint_every: int = 10
    validate_every: int = 0
    verbose: int = 1

    def __post_init__(self):
        if self.epochs < 1:
            raise ReIDError(f"train.epochs must be >= 1, got {self.epochs}.")
        if self.distribute not in (None, "mirrored"):
            raise ReIDError(
                f"train.distribute must be null or 'mirrored', got {self.distribute!r}."
            )


@contextlib.contextmanager
def runtime(options):
    """Seed everything, set the precision policy, yield the distribution strategy.

    The global Keras precision policy is restored on exit, so a notebook that
    trains with mixed precision and then builds another model gets float32.
    """
    keras.utils.set_random_seed(options.seed)
    previous = keras.mixed_precision.global_policy()
    if options.mixed_precision:
        on_gpu = bool(tf.config.list_physical_devices("GPU"))
        keras.mixed_precision.set_global_policy("mixed_float16" if on_gpu else "mixed_bfloat16")
    try:
        if options.distribute == "mirrored":
            yield tf.distribute.MirroredStrategy()
        else:
            yield tf.distribute.get_strategy()
    finally:
        keras.mixed_precision.set_global_policy(previous)


class StopOnNaN(keras.callbacks.Callback):
    """Stop training at the first NaN or infinite loss, naming the step and the checkpoint.

    Args:
        checkpoint_dir: where ``.keras`` checkpoints are written, to name the last good one.
    """

    def __init__(self, checkpoint_dir):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            checkpoints = sorted(
                glob.glob(os.path.join(self.checkpoint_dir, "*.keras")), key=os.path.getmtime
            )
            last = checkpoints[-1] if checkpoints else "none written yet"
            raise ReIDError(
                f"the loss became {float(loss)} at epoch {self.epoch + 1}, step {batch + 1}; "
                f"last good checkpoint: {last}. Lower the learning rate or check the data, "
                "then restart from that checkpoint."
            )


class RankingValidation(keras.callbacks.Callback):
    """Score Rank-1 and mAP on a query/gallery set every ``every`` epochs.

    Adds ``val_rank1`` and ``val_mAP`` to the logs (so CSV/TensorBoard record
    them). Features use flip TTA and L2-normalised embeddings, as in the
    EmbAE paper's scoring.
    """

    def __init__(self, query, gallery, every=1, tta="flip", output="embedding"):
        super().__init__()
        self.query, self.gallery = query, gallery
        self.every, self.tta, self.output = every, tta, output

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        from keras_reid.inference import extract_features
        from keras_reid.metrics import evaluate

        features = [
            extract_features(self.model, table, tta=self.tta, output=self.output, progress=False)
            for table in (self.query, self.gallery)
        ]
        row = evaluate(*features, self.query, self.gallery, normalize=True).iloc[0]
        if logs is not None:
            logs["val_rank1"] = float(row["rank1"])
            logs["val_mAP"] = float(row["mAP"])
        print(f" - val Rank-1 {row['rank1']:.3f}, mAP {row['mAP']:.3f}")


def standard_callbacks(out, options, validation=None):
    """Logs, checkpoints, resumable backups and the NaN stop for a run folder ``out``."""
    checkpoints = os.path.join(out, "checkpoints")
    os.makedirs(checkpoints, exist_ok=True)
    checkpoint = keras.callbacks.ModelCheckpoint(
        os.path.join(checkpoints, "epoch_{epoch:04d}.keras"), save_freq="epoch"
    )
    if options.checkpoint_every > 1:
        checkpoint = _EveryN(checkpoint, options.checkpoint_every, options.epochs)
    backup = keras.callbacks.BackupAndRestore(
        os.path.join(out, "backup"), save_freq=options.backup_steps or "epoch"
    )
    return [
        StopOnNaN(checkpoints),
        backup,
        *([validation] if validation is not None else []),
        checkpoint,
        keras.callbacks.CSVLogger(os.path.join(out, "log.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(out, "tensorboard"), write_graph=False),
    ]


class _EveryN(keras.callbacks.Callback):
    """Run a callback's ``on_epoch_end`` every ``n`` epochs and at the last one."""

    def __init__(self, callback, n, epochs):
        super().__init__()
        self.callback, self.n, self.epochs = callback, n, epochs

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.n == 0 or epoch + 1 == self.epochs:
            self.callback.on_epoch_end(epoch, logs)


def fit(model, dataset, steps_per_epoch, options, callbacks, tables=()):
    """``model.fit`` with errors translated into one-line ReIDErrors.

    An image that cannot be read or decoded (any of the pipeline's
    ``IMAGE_ERRORS``) is traced to the file(s) by ``explain_unreadable``.
    """
    from keras_reid.data.pipeline import IMAGE_ERRORS, explain_unreadable

    try:
        return model.fit(
            dataset,
            epochs=options.epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=options.verbose,
            shuffle=False,
        )
    except IMAGE_ERRORS as error:
        raise explain_unreadable(error, tables) from error


def save_model(model, path):
    """Save a ``.keras`` file atomically (a temporary file, then a rename)."""
    temporary = path[: -len(".keras")] + ".tmp.keras"
    model.save(temporary)
    os.replace(temporary, path)
    return path
