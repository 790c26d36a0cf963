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
- The backup before the newest is kept too (``state.json`` names both): a
  newest backup damaged after it was written (a disk fault, a cut copy of
  the run folder) costs the steps between the two, with a warning, not the
  run. When neither is whole, the error names both files.
- A resumed run continues the batch stream at the step it stopped at (the
  pipelines are stateless in the step: :mod:`keras_reid.data.samplers`), so
  on a CPU it ends with the same weights as an uninterrupted run.
- ``log.csv`` has one row per epoch: rows of the epochs that a resumed run
  does again are replaced, and the resumed epoch's figures are combined
  with those logged before the interruption (a step-weighted mean). A
  byte-order mark (the log saved from Excel) is read past; a line that is
  not a row of the log is refused, naming the line: the backup holds no
  earlier epoch's row to rebuild it from.
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
import zipfile

import keras
import numpy as np

from keras_reid.errors import ReIDError
from keras_reid.fileio import atomic_output, read_text, remove_stale_temporaries, write_text
from keras_reid.serving.model_io import non_finite_weights

logger = logging.getLogger("keras_reid.training")

STATE_FILE = "state.json"
_CHECKPOINT = re.compile(r"^epoch_(\d+)\.keras$")
# What np.load raises for a cut, emptied or corrupted .npz file.
_DAMAGED_ARCHIVE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


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


def load_saved_model(path):
    """The ``.keras`` model a run saved at ``path``; a damaged file is a ReIDError saying so.

    Every member of the archive is read against its CRC-32 first: Keras
    reads the weights in parts and would not notice a flipped bit.

    Raises:
        ReIDError: "PATH is damaged (REASON)", for the caller to add what to do.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError):
        whole = f"not a whole .keras zip archive: {os.path.getsize(path)} bytes"
        raise ReIDError(f"{path} is damaged ({whole})") from None
    if bad is not None:
        raise ReIDError(f"{path} is damaged (its {bad} fails the archive's CRC-32 check)")
    try:
        return keras.models.load_model(path)
    except Exception as error:  # Keras raises many types for a file it cannot read
        raise ReIDError(f"{path} is damaged ({type(error).__name__}: {error})") from None


def load_finished_model(path):
    """The model.keras of a finished run, for a resume that has nothing left to do.

    Raises:
        ReIDError: for a damaged file, naming the run's last checkpoint (beside
            it in ``checkpoints/``), which was saved from the same weights.
    """
    try:
        return load_saved_model(path)
    except ReIDError as error:
        checkpoint = last_checkpoint(os.path.join(os.path.dirname(path), "checkpoints"))
        if checkpoint is None:
            raise ReIDError(f"{error}; train again in a new --out.") from None
        raise ReIDError(
            f"{error}; the run's last checkpoint {checkpoint} holds the same weights: copy it "
            f"onto {path}, or train again in a new --out."
        ) from None


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


def _backups(state):
    """The backups a ``state.json`` records, newest first: the newest, and the one before."""
    return [state, *([state["previous"]] if state.get("previous") else [])]


def _check_log_row(row):
    """Raise a ValueError saying why a ``csv.DictReader`` row is no row of a run's log."""
    if None in row or None in row.values():
        raise ValueError(f"{'more' if None in row else 'fewer'} fields than its header")
    for key, value in row.items():
        if value == "" and key != "epoch":
            continue  # a column that some epochs have (a validation every few epochs)
        try:
            (int if key == "epoch" else float)(value)
        except ValueError:
            raise ValueError(f"{key} {value!r} is not a number") from None


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
        self._newest = None  # the newest whole backup: kept beside the next one

    # -- resume ---------------------------------------------------------------
    def read(self):
        """The recorded ``state.json`` (a dict), or None when there is no backup.

        ``state["previous"]``, when present, records the backup before the newest.
        """
        path = os.path.join(self.folder, STATE_FILE)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as stream:
                state = json.load(stream)
            for backup in _backups(state):
                backup["step"] = int(backup["step"])
                if not isinstance(backup["file"], str):
                    raise TypeError(f"file {backup['file']!r} is not a file name")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ReIDError(f"the backup {path} is damaged ({error}); {self._restart}") from None
        return state

    @property
    def _restart(self):
        return (
            f"delete {self.folder} and resume to restart the run from its first step, or start "
            "it again without --resume in a new --out."
        )

    def restore(self, model):
        """Load the backup into ``model`` (compiled); return the global step to resume at.

        Returns 0, touching nothing, when the folder holds no backup. A damaged
        newest backup is skipped, with a warning, for the one before it.
        """
        remove_stale_temporaries(os.path.dirname(self.folder))
        state = self.read()
        if state is None:
            self._read_log(0)
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        variables = _variables(model)
        damaged = []  # (path, error) of each backup tried in vain, newest first
        for backup in _backups(state):
            path = os.path.join(self.folder, backup["file"])
            try:
                with np.load(path) as arrays:
                    values = [arrays[f"v{index}"] for index in range(len(arrays.files))]
                break
            except _DAMAGED_ARCHIVE as error:
                damaged.append((path, error))
        else:
            (newest, why), *older = damaged
            before = "".join(f", and so is the one before it, {p} ({e})" for p, e in older)
            raise ReIDError(f"the backup {newest} is damaged ({why}){before}; {self._restart}")
        shapes = [tuple(v.shape) for v in variables]
        if [v.shape for v in values] != shapes:
            raise ReIDError(
                f"the backup {path} holds {len(values)} variables that do not match the model "
                f"({len(shapes)}); the run folder belongs to another model. Delete {self.folder} "
                "to restart, or resume with the run's own config."
            )
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        self.step = backup["step"]
        self._newest = {key: backup.get(key) for key in ("step", "file", "epoch_logs")}
        epoch, step = divmod(self.step, self.steps_per_epoch)
        self._carry = (backup.get("epoch_logs") or {}, step)
        self._carry_epoch = epoch if step else None
        self._read_log(epoch)
        if damaged:
            logger.warning(
                "warning: the backup %s is damaged (%s); resuming from the one before it, %s, "
                "at epoch %d, step %d (its later steps are trained again).",
                *damaged[0],
                path,
                epoch + 1,
                step,
            )
        logger.info("resuming at epoch %d, step %d (from %s)", epoch + 1, step, path)
        return self.step

    def _read_log(self, epoch):
        """Keep the rows of the epochs before ``epoch``; the rest will be written again."""
        self._rows = []
        if not os.path.isfile(self.log_path):
            return
        fix = (
            f"fix that line, or delete {self.log_path} to resume without the rows of the "
            "epochs before"
        )
        text = read_text(self.log_path, "the run's log", fix)
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            if reader.fieldnames is not None and "epoch" not in reader.fieldnames:
                raise ValueError("its header has no epoch column")
            for row in reader:
                _check_log_row(row)
                if int(row["epoch"]) < epoch:
                    self._rows.append(row)
        except (csv.Error, ValueError) as error:
            raise ReIDError(
                f"the run's log {self.log_path} is damaged at line {reader.line_num} ({error}); "
                f"{fix}."
            ) from None

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
        """Write state-STEP.npz, then point state.json at it and at the one before, then drop
        the older ones."""
        values = [keras.ops.convert_to_numpy(v.value) for v in _variables(self.model)]
        if not all(np.isfinite(value).all() for value in values if value.dtype.kind == "f"):
            return  # StopOnNaN names the failure; a backup never holds NaN weights
        os.makedirs(self.folder, exist_ok=True)
        name = f"state-{self.step:09d}.npz"
        with atomic_output(os.path.join(self.folder, name)) as temporary:
            with open(temporary, "wb") as stream:
                np.savez(stream, **{f"v{i}": value for i, value in enumerate(values)})
        state = {"step": self.step, "file": name, "epoch_logs": epoch_logs}
        recorded = {**state, "previous": self._newest}
        write_text(os.path.join(self.folder, STATE_FILE), json.dumps(recorded, indent=1) + "\n")
        kept = {name, (self._newest or {}).get("file")}
        for old in glob.glob(os.path.join(self.folder, "state-*.npz")):
            if os.path.basename(old) not in kept:
                os.remove(old)
        self._newest = state

    def finish(self):
        """Delete the backup: call once the final model is saved."""
        shutil.rmtree(self.folder, ignore_errors=True)
