"""Crash-safe run state: resumable backups, the epoch log, checkpoints, divergence checks.

A run may be killed at any moment (a pre-empted job, a full disk, Ctrl-C) and
resumed with ``--resume``. What this module promises:

- Every file a run writes is complete or absent: each is written under a
  hidden temporary name and renamed into place (:mod:`keras_reid.fileio`).
- The backup (``backup/state.json`` naming ``backup/state-STEP.npz``) holds
  the model's variables (weights, BatchNorm statistics, seed states), the
  optimizer's variables and the global step. A new backup replaces the
  previous one only once it is whole, and it is deleted only after
  ``model.keras`` is written.
- A resumed run continues the batch stream at the step it stopped at (the
  pipelines are stateless in the step: :mod:`keras_reid.data.pipeline`), so
  on a CPU it ends with the same weights as an uninterrupted run.
- ``log.csv`` has one row per epoch: rows of the epochs that a resumed run
  does again are replaced, and the resumed epoch's figures are combined
  with those logged before the interruption (a step-weighted mean).
- NaN or infinite weights or losses stop the run before anything is saved
  from them, naming the epoch, the step and the last good checkpoint.

Keras' ``BackupAndRestore`` is not used: it deletes its backup before the
final model is saved, writes in place, and restarts the batch stream.
"""

import csv
import glob
import io
import json
import logging
import math
import os
import re
import shutil

import keras
import numpy as np

from keras_reid.errors import ReIDError
from keras_reid.fileio import atomic_output, remove_stale_temporaries, write_text
from keras_reid.inference import non_finite_weights

logger = logging.getLogger("keras_reid.training")

STATE_FILE = "state.json"
_CHECKPOINT = re.compile(r"^epoch_(\d+)\.keras$")


def save_model(model, path):
    """Save a ``.keras`` file atomically (a hidden temporary file, then a rename).

    A compiled model's optimizer is built first, as fitting builds it: saved
    unbuilt (a run of 0 epochs), the file would load with Keras's warning
    "Skipping variable loading for optimizer".
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        with model.distribute_strategy.scope():
            optimizer.build(model.trainable_variables)
    with atomic_output(path, suffix=".keras") as temporary:
        model.save(temporary)
    return path


def last_checkpoint(folder):
    """The newest complete ``epoch_NNNN.keras`` in ``folder``, or None."""
    found = [
        (int(match[1]), name)
        for name in (os.listdir(folder) if os.path.isdir(folder) else [])
        if (match := _CHECKPOINT.match(name))
    ]
    return os.path.join(folder, max(found)[1]) if found else None


def _diverged(what, epoch, step, checkpoints):
    last = last_checkpoint(checkpoints) or "none written yet"
    return ReIDError(
        f"training diverged: {what} at epoch {epoch + 1}, step {step}; last good checkpoint: "
        f"{last} (nothing was saved after it). Lower the learning rate or check the data, "
        "then start a new run."
    )


class StopOnNaN(keras.callbacks.Callback):
    """Stop at the first non-finite loss or weight, naming the step and the last checkpoint.

    The loss is checked after every step. The weights (BatchNorm statistics
    included, which a diverging run can ruin while its loss still looks
    finite) are checked at every epoch end, before any checkpoint or backup
    is written from them.

    Args:
        checkpoint_dir: where ``epoch_NNNN.keras`` checkpoints are written, to
            name the last good one.
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
            raise _diverged(
                f"the loss became {float(loss)}", self.epoch, batch + 1, self.checkpoint_dir
            )

    def on_epoch_end(self, epoch, logs=None):
        bad = non_finite_weights(self.model)
        if bad:
            raise _diverged(
                f"{len(bad)} weight(s) became NaN or infinite (e.g. {bad[0]})",
                epoch,
                "end",
                self.checkpoint_dir,
            )


class Checkpoint(keras.callbacks.Callback):
    """``folder/epoch_NNNN.keras`` every ``every`` epochs and at the last, written atomically."""

    def __init__(self, folder, every, epochs):
        super().__init__()
        self.folder, self.every, self.epochs = folder, every, epochs

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.epochs:
            save_model(self.model, os.path.join(self.folder, f"epoch_{epoch + 1:04d}.keras"))


def _variables(model):
    """Everything a resumed run needs, in a fixed order: model, then optimizer variables."""
    return [*model.variables, *model.optimizer.variables]


def _combine(before, steps_before, after, steps_after):
    """Step-weighted means of two parts of one epoch's running figures."""
    total = steps_before + steps_after
    return {
        key: (before[key] * steps_before + value * steps_after) / total if key in before else value
        for key, value in after.items()
    }


class RunState(keras.callbacks.Callback):
    """The resumable state of a run folder: its backup and its ``log.csv``.

    Put it last among the callbacks, so that the epoch's row (with any
    validation figures) and its checkpoint are written before the backup
    that moves the resume point past that epoch.

    Args:
        out: the run folder (``backup/`` and ``log.csv`` inside).
        steps_per_epoch: steps in one epoch.
        every_steps: also back up every this many steps (None: at epoch ends only).

    Example:
        >>> state = RunState(out, steps)
        >>> start = state.restore(model)  # 0 for a new run
        >>> fit(model, lambda step: pk_batches(..., start_step=step), steps, options,
        ...     [StopOnNaN(...), state], start_step=start)
    """

    def __init__(self, out, steps_per_epoch, every_steps=None):
        super().__init__()
        self.folder = os.path.join(out, "backup")
        self.log_path = os.path.join(out, "log.csv")
        self.steps_per_epoch = steps_per_epoch
        self.every_steps = every_steps
        self.step = 0
        # The running figures of the epoch the run resumed in, before the interruption.
        self._carry = ({}, 0)
        self._carry_epoch = None
        self._rows = []

    # -- resume ---------------------------------------------------------------
    def read(self):
        """The recorded ``state.json`` (a dict), or None when there is no backup."""
        path = os.path.join(self.folder, STATE_FILE)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as stream:
                state = json.load(stream)
            state["step"] = int(state["step"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ReIDError(
                f"the backup {path} is damaged ({error}); delete {self.folder} to restart the "
                "run from scratch."
            ) from None
        return state

    def restore(self, model):
        """Load the backup into ``model`` (compiled); return the global step to resume at.

        Returns 0, touching nothing, when the folder holds no backup.
        """
        remove_stale_temporaries(os.path.dirname(self.folder))
        state = self.read()
        if state is None:
            self._read_log(0)
            return 0
        path = os.path.join(self.folder, state["file"])
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        variables = _variables(model)
        try:
            with np.load(path) as arrays:
                values = [arrays[f"v{index}"] for index in range(len(arrays.files))]
        except (OSError, ValueError, KeyError) as error:
            raise ReIDError(
                f"the backup {path} is damaged ({error}); delete {self.folder} to restart the "
                "run from scratch."
            ) from None
        shapes = [tuple(v.shape) for v in variables]
        if [v.shape for v in values] != shapes:
            raise ReIDError(
                f"the backup {path} holds {len(values)} variables that do not match the model "
                f"({len(shapes)}); the run folder belongs to another model. Delete {self.folder} "
                "to restart, or resume with the run's own config."
            )
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        self.step = state["step"]
        epoch, step = divmod(self.step, self.steps_per_epoch)
        self._carry = (state.get("epoch_logs") or {}, step)
        self._carry_epoch = epoch if step else None
        self._read_log(epoch)
        logger.info("resuming at epoch %d, step %d (from %s)", epoch + 1, step, path)
        return self.step

    def _read_log(self, epoch):
        """Keep the rows of the epochs before ``epoch``; the rest will be written again."""
        self._rows = []
        if os.path.isfile(self.log_path):
            with open(self.log_path, encoding="utf-8", newline="") as stream:
                self._rows = [row for row in csv.DictReader(stream) if int(row["epoch"]) < epoch]

    # -- saving ---------------------------------------------------------------
    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.every_steps and self.step % self.every_steps == 0:
            if self.step % self.steps_per_epoch:  # epoch ends back up in on_epoch_end
                self._backup(self._epoch_logs(logs, self.step % self.steps_per_epoch))

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if epoch == self._carry_epoch:
            logs = {**logs, **self._epoch_logs(logs, self.steps_per_epoch)}
            self._carry_epoch = None
        logs.pop("learning_rate", None)
        self._rows.append({"epoch": epoch, **logs})
        self._write_log()
        self._backup({})

    def _epoch_logs(self, logs, step_in_epoch):
        """Running figures of the current epoch, joined with those from before a resume."""
        logs = {k: float(v) for k, v in (logs or {}).items() if not k.startswith("val_")}
        logs.pop("learning_rate", None)
        before, steps_before = self._carry
        epoch = (self.step - 1) // self.steps_per_epoch
        if epoch != self._carry_epoch or not steps_before:
            return logs
        return _combine(before, steps_before, logs, step_in_epoch - steps_before)

    def _write_log(self):
        columns = ["epoch"]
        for row in self._rows:
            columns += [key for key in sorted(row) if key not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self._rows)
        write_text(self.log_path, buffer.getvalue())

    def _backup(self, epoch_logs):
        """Write state-STEP.npz, then point state.json at it, then drop the older ones."""
        values = [keras.ops.convert_to_numpy(v.value) for v in _variables(self.model)]
        if not all(np.isfinite(value).all() for value in values if value.dtype.kind == "f"):
            return  # StopOnNaN names the failure; a backup never holds NaN weights
        os.makedirs(self.folder, exist_ok=True)
        name = f"state-{self.step:09d}.npz"
        with atomic_output(os.path.join(self.folder, name)) as temporary:
            with open(temporary, "wb") as stream:
                np.savez(stream, **{f"v{i}": value for i, value in enumerate(values)})
        state = {"step": self.step, "file": name, "epoch_logs": epoch_logs}
        write_text(os.path.join(self.folder, STATE_FILE), json.dumps(state, indent=1) + "\n")
        for old in glob.glob(os.path.join(self.folder, "state-*.npz")):
            if os.path.basename(old) != name:
                os.remove(old)

    def finish(self):
        """Delete the backup: call once the final model is saved."""
        shutil.rmtree(self.folder, ignore_errors=True)
