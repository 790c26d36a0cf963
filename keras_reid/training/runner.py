"""What every paper's training shares: runtime set-up, callbacks, and ``model.fit``.

``model.fit`` with callbacks is the training loop. This module adds the parts a
re-ID run needs around it: seeds, ``tf.distribute``, mixed precision, logs
(CSV, TensorBoard), ``.keras`` checkpoints, resumption after an interruption,
a validation callback scoring Rank-1/mAP, and a clear stop on a NaN loss.
"""

import contextlib
import logging
import os
from dataclasses import dataclass

import keras
import tensorflow as tf

from keras_reid.checks import is_number
from keras_reid.errors import ReIDError
from keras_reid.training.callbacks import ReversalRamp
from keras_reid.training.cluster import stop_or_lost_peer
from keras_reid.training.distribute import (
    DISTRIBUTE,
    PEER_TIMEOUT,
    SyncStatistics,
    check_peer_timeout,
    multi_worker_strategy,
)
from keras_reid.training.state import Checkpoint, RunState, StopOnNaN, save_model

__all__ = [
    "RankingValidation",
    "RunState",
    "StopOnNaN",
    "TrainOptions",
    "fit",
    "runtime",
    "save_model",
    "standard_callbacks",
    "start_from",
]

logger = logging.getLogger("keras_reid.training")


@dataclass
class TrainOptions:
    """The ``train`` section of a config.

    Attributes:
        epochs: epochs to train (an epoch is images / (P*K) steps); 0 writes the
            initialised model, so that an ImageNet-only baseline is evaluated like a run.
        seed: seeds Python, NumPy, TensorFlow and the batch sampler; a CPU run
            with the same seed repeats.
        distribute: None, "mirrored" for ``tf.distribute.MirroredStrategy``
            over every local GPU (or CPU devices), or "multi_worker" for
            ``tf.distribute.MultiWorkerMirroredStrategy`` over the machines that
            ``TF_CONFIG`` names (see :func:`multi_worker_strategy` and
            :func:`run_folder`); each replica gets whole P*K groups.
        peer_timeout: seconds a multi-worker run waits for every other worker
            of ``TF_CONFIG`` to answer at its address before it stops, naming
            those that did not (default 300; see :func:`multi_worker_strategy`);
            at the end, the longest the workers wait for each other to finish
            (see :func:`~keras_reid.training.distribute.finish_multi_worker`).
        mixed_precision: compute in float16 on a GPU (bfloat16 on a CPU).
        backup_steps: steps between resumable backups inside an epoch (None:
            at epoch ends only; see :class:`~keras_reid.training.state.RunState`).
            A resumed run continues at the backed-up step with the same batches,
            so on a CPU it ends with the weights of an uninterrupted run.
        checkpoint_every: epochs between ``.keras`` checkpoints (the last epoch
            is always saved as ``model.keras``).
        validate_every: epochs between Rank-1/mAP validations (0: never).
        verbose: Keras' progress output (1 bars, 2 one line per epoch, 0 silent).
        init_from: None, or a ``.keras`` model whose weights a fresh run starts
            from (a multi-stage recipe's previous stage, or any run of the same
            architecture); its optimizer state is not taken. See :func:`start_from`.
        reversal_ramp: None (default: gradient reversal layers keep their
            factor, DIEN's constant), or ``{max_scale, gamma}`` (both optional):
            :class:`~keras_reid.training.callbacks.ReversalRamp` sets the factor
            on Ganin's schedule over the whole run.
    """

    epochs: int = 400
    seed: int = 0
    distribute: str | None = None
    peer_timeout: float = PEER_TIMEOUT
    mixed_precision: bool = False
    backup_steps: int | None = None
    checkpoint_every: int = 10
    validate_every: int = 0
    verbose: int = 1
    init_from: str | None = None
    reversal_ramp: dict | None = None

    def __post_init__(self):
        for name, minimum in (("epochs", 0), ("checkpoint_every", 1), ("validate_every", 0)):
            if getattr(self, name) < minimum:
                raise ReIDError(f"train.{name} must be >= {minimum}, got {getattr(self, name)}.")
        if self.backup_steps is not None and self.backup_steps < 1:
            raise ReIDError(
                f"train.backup_steps must be >= 1 or null (epoch ends only), got "
                f"{self.backup_steps}."
            )
        if self.verbose not in (0, 1, 2):
            raise ReIDError(f"train.verbose must be 0, 1 or 2, got {self.verbose}.")
        ramp = self.reversal_ramp
        if ramp is not None and (
            not isinstance(ramp, dict)
            or set(ramp) - {"max_scale", "gamma"}
            or any(not is_number(v, minimum=0) for v in ramp.values())
        ):
            raise ReIDError(
                "train.reversal_ramp must be null or {max_scale: >= 0, gamma: >= 0}, e.g. "
                f"{{max_scale: 1.0, gamma: 10}}. Received: {ramp!r}"
            )
        check_peer_timeout(self.peer_timeout)
        if self.distribute not in (None, *DISTRIBUTE):
            raise ReIDError(
                f"train.distribute must be null, 'mirrored' or 'multi_worker', got "
                f"{self.distribute!r}."
            )


def start_from(model, path):
    """Set ``model``'s weights to those of the ``.keras`` model at ``path``.

    The two must be the same architecture: the same weights, in the same
    order, with the same names and shapes (a stage-2 run pointed at another
    model's stage 1 is refused, naming both models and the first difference).
    """
    from keras_reid.serving.model_io import load_keras_model

    try:
        source = load_keras_model(path)
    except ReIDError as error:
        raise ReIDError(f"train.init_from: {error}") from None

    def layout(net):
        return [(w.path, tuple(w.shape)) for w in net.weights]

    theirs, mine = layout(source), layout(model)
    if theirs != mine:
        first = next(
            (i for i, pair in enumerate(zip(theirs, mine, strict=False)) if pair[0] != pair[1]),
            min(len(theirs), len(mine)),
        )

        def describe(weights):
            return f"{weights[first][0]} {weights[first][1]}" if first < len(weights) else "none"

        raise ReIDError(
            f"train.init_from: {path} is a {source.name!r} model ({len(theirs)} weights), "
            f"this run builds {model.name!r} ({len(mine)} weights); they first differ at weight "
            f"{first}: {describe(theirs)} there, {describe(mine)} here. Start from a model "
            "built with the same model section."
        )
    model.set_weights(source.get_weights())
    logger.info("starting from the weights of %s", path)


@contextlib.contextmanager
def runtime(options):
    """Seed everything, set the precision policy, yield the distribution strategy.

    The global Keras precision policy is restored on exit, so a notebook that
    trains with mixed precision and then builds another model gets float32.
    A multi-worker strategy is made first of all (TensorFlow requires it
    before any other op; see :func:`multi_worker_strategy`), and the block's
    errors after a signal or a lost worker are one line
    (:func:`~keras_reid.training.cluster.stop_or_lost_peer`).
    """
    multi_worker = options.distribute == "multi_worker"
    strategy = multi_worker_strategy(options.peer_timeout) if multi_worker else None
    keras.utils.set_random_seed(options.seed)
    previous = keras.mixed_precision.global_policy()
    if options.mixed_precision:
        on_gpu = bool(tf.config.list_physical_devices("GPU"))
        keras.mixed_precision.set_global_policy("mixed_float16" if on_gpu else "mixed_bfloat16")
    try:
        if options.distribute == "mirrored":
            yield tf.distribute.MirroredStrategy()
        elif multi_worker:
            with stop_or_lost_peer():
                yield strategy
        else:
            yield tf.distribute.get_strategy()
    finally:
        keras.mixed_precision.set_global_policy(previous)


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
        from keras_reid.evaluation.metrics import evaluate
        from keras_reid.serving.extract import extract_features

        features = [
            extract_features(self.model, table, tta=self.tta, output=self.output, progress=False)
            for table in (self.query, self.gallery)
        ]
        row = evaluate(*features, self.query, self.gallery, normalize=True).iloc[0]
        if logs is not None:
            logs["val_rank1"] = float(row["rank1"])
            logs["val_mAP"] = float(row["mAP"])
        print(f" - val Rank-1 {row['rank1']:.3f}, mAP {row['mAP']:.3f}")


def standard_callbacks(out, options, steps_per_epoch, validation=None, chief=True):
    """The callbacks of a run folder ``out``, and its :class:`RunState` (the last of them).

    In order: the NaN stop (first, so that nothing is saved from a diverged
    model), the validation, ``.keras`` checkpoints, TensorBoard, then the run
    state (``log.csv`` and the resumable backup). A multi-worker run starts
    with :class:`SyncStatistics`; a worker that is not the ``chief`` (see
    :func:`run_folder`) writes no checkpoints and no TensorBoard logs. Every
    worker runs the same steps and callbacks, so that any collective op in
    them (the statistics' average, a validation) is met by all.
    """
    checkpoints = os.path.join(out, "checkpoints")
    if chief:
        os.makedirs(checkpoints, exist_ok=True)
    state = RunState(out, steps_per_epoch, every_steps=options.backup_steps)
    ramp = []
    if options.reversal_ramp is not None:
        ramp = [ReversalRamp(**options.reversal_ramp, total_steps=options.epochs * steps_per_epoch)]
    writers = [
        Checkpoint(checkpoints, options.checkpoint_every, options.epochs),
        keras.callbacks.TensorBoard(os.path.join(out, "tensorboard"), write_graph=False),
    ]
    callbacks = [
        *([SyncStatistics()] if options.distribute == "multi_worker" else []),
        StopOnNaN(checkpoints),
        *ramp,
        *([validation] if validation is not None else []),
        *(writers if chief else []),
        state,
    ]
    return callbacks, state


def fit(model, batches, steps_per_epoch, options, callbacks, tables=(), start_step=0):
    """``model.fit`` from global step ``start_step``, with errors translated into ReIDErrors.

    Args:
        model: the compiled model.
        batches: a ``tf.data.Dataset``, or a function ``start_step -> Dataset``
            giving the batch stream from that step on (needed to resume).
        steps_per_epoch: steps in one epoch.
        options: the :class:`TrainOptions`.
        callbacks: Keras callbacks.
        tables: the training tables, to name unreadable images.
        start_step: the global step to start at (a resumed run's). A resume
            inside an epoch finishes that epoch first, then runs the others.

    An image that cannot be read or decoded (any of the pipeline's
    ``IMAGE_ERRORS``) is traced to the file(s) by ``explain_unreadable``.
    """
    from keras_reid.data.images import IMAGE_ERRORS, explain_unreadable

    make = batches if callable(batches) else (lambda step: batches)
    epoch, step = divmod(start_step, steps_per_epoch)
    parts = []
    if step:
        parts.append((epoch, epoch + 1, steps_per_epoch - step, start_step))
        epoch += 1
    if epoch < options.epochs:
        parts.append((epoch, options.epochs, steps_per_epoch, epoch * steps_per_epoch))
    try:
        history = None
        for initial_epoch, epochs, steps, first_step in parts:
            history = model.fit(
                make(first_step),
                initial_epoch=initial_epoch,
                epochs=epochs,
                steps_per_epoch=steps,
                callbacks=callbacks,
                verbose=options.verbose,
                shuffle=False,
            )
        return history
    except IMAGE_ERRORS as error:
        raise explain_unreadable(error, tables) from error
