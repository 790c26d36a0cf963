"""Training on several machines: ``train.distribute: multi_worker``.

``tf.distribute.MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, checked
first (:func:`worker_task`), and made once the other workers answer
(:func:`start_multi_worker`, :func:`multi_worker_strategy`; the wait and the
signals are :mod:`keras_reid.training.cluster`'s); where each worker writes (:func:`run_folder`);
and what Keras 3's ``fit`` lacks for it: reductions it can take
(``_MultiWorkerStrategy``), BatchNorm statistics kept equal across workers
(:class:`SyncStatistics`), a barrier and a check that resumed workers agree
on the step. The runner and the recipe use them; the CLI ends a run with
:func:`finish_multi_worker`.
"""

import gc
import inspect
import json
import logging
import os
from dataclasses import dataclass

import keras
import tensorflow as tf
from tensorflow.python.eager import context  # its barrier: TensorFlow has no public one

from keras_reid.checks import is_int, is_number
from keras_reid.data.samplers import pk_batches
from keras_reid.errors import ReIDError
from keras_reid.training.cluster import (
    PEER_TIMEOUT,
    split_address,
    stop_on_signals,
    wait_for_peers,
    wait_for_peers_to_leave,
)

logger = logging.getLogger("keras_reid.training")

DISTRIBUTE = ("mirrored", "multi_worker")
_TF_CONFIG_HELP = (
    'set it per worker to {"cluster": {"worker": ["host:port", ...]}, "task": {"type": '
    '"worker", "index": I}}, the same worker list everywhere and I this machine\'s place in it'
)


@dataclass(frozen=True)
class WorkerTask:
    """This process's place in a multi-worker cluster (from ``TF_CONFIG``)."""

    type: str
    index: int
    num_tasks: int
    has_chief: bool = False
    tasks: tuple = ()  # ((name, "host:port"), ...) of the cluster: "chief 0", "worker 0", ...

    @property
    def name(self):
        """This task as :attr:`tasks` names it, e.g. "worker 1"."""
        return f"{self.type} {self.index}"

    @property
    def peers(self):
        """``[(name, address)]`` of the cluster's other tasks."""
        return [(name, address) for name, address in self.tasks if name != self.name]

    @property
    def is_chief(self):
        """The chief writes the run folder: the "chief" task, else worker 0 (TF's rule)."""
        return self.type == "chief" or (not self.has_chief and self.index == 0)


def worker_task(environ=None):
    """Parse and check ``TF_CONFIG``: this process's :class:`WorkerTask`, or a one-line ReIDError.

    ``TF_CONFIG`` is the JSON that ``tf.distribute.MultiWorkerMirroredStrategy``
    reads: ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type":
    "worker", "index": I}}`` (a ``"chief"`` job of one address may come beside
    the workers). It is checked here because TensorFlow's own errors for a bad
    one are tracebacks, or a silent single-worker run.
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not raw.strip():
        raise ReIDError(
            f"train.distribute multi_worker needs TF_CONFIG, which is not set: {_TF_CONFIG_HELP}."
        )
    try:
        config = json.loads(raw)
    except ValueError as error:
        raise ReIDError(f"TF_CONFIG is not valid JSON ({error}): {_TF_CONFIG_HELP}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    workers = cluster.get("worker") if isinstance(cluster, dict) else None
    if (
        not isinstance(workers, list)
        or not workers
        or not all(isinstance(address, str) and address for address in workers)
    ):
        raise ReIDError(
            f'TF_CONFIG has no cluster.worker list of "host:port" addresses: {_TF_CONFIG_HELP}.'
        )
    chief = cluster.get("chief", [])
    if not isinstance(chief, list) or len(chief) > 1:
        raise ReIDError(
            f'TF_CONFIG cluster.chief must be a list of one "host:port" address, got '
            f"{chief!r}; or leave it out, and worker 0 is the chief."
        )
    tasks = []
    for job, addresses in (("chief", chief), ("worker", workers)):
        for i, address in enumerate(addresses):
            if not isinstance(address, str) or split_address(address) is None:
                raise ReIDError(
                    f'TF_CONFIG cluster.{job}[{i}] is {address!r}, not "host:port" with a port '
                    f'in 1..65535 (an IPv6 host in brackets, "[::1]:12345"): {_TF_CONFIG_HELP}.'
                )
            tasks.append((f"{job} {i}", address))
    task = config.get("task")
    kind = task.get("type") if isinstance(task, dict) else None
    if kind not in ("worker", "chief") or (kind == "chief" and not chief):
        raise ReIDError(
            f'TF_CONFIG task.type must be "worker" (or "chief" with a cluster.chief '
            f"entry), got {kind!r}: {_TF_CONFIG_HELP}."
        )
    index = task.get("index")
    size = len(workers) if kind == "worker" else 1
    if not is_int(index, minimum=0, maximum=size - 1):
        raise ReIDError(
            f"TF_CONFIG task.index must be an integer in 0..{size - 1} (cluster.{kind} has "
            f"{size} address(es)), got {index!r}: {_TF_CONFIG_HELP}."
        )
    return WorkerTask(kind, index, len(workers) + len(chief), bool(chief), tuple(tasks))


class _MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` with the reductions that Keras 3's ``fit`` asks of it.

    Keras 3 (keras-team/keras#20585) reduces a whole ``(images, labels)`` batch
    in one ``reduce`` call before the first step, and the step's scalar logs
    with ``axis=0``; TensorFlow's strategy takes one tensor per call and no
    axis on a scalar, so ``fit`` fails. Here a structure is reduced leaf by
    leaf, and a scalar's ``axis`` means what Keras means on one machine: the
    mean over the replicas.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def one(leaf):
            local = self.experimental_local_results(leaf)[0]
            scalar = len(getattr(local, "shape", ())) == 0
            return parent.reduce(reduce_op, leaf, None if scalar else axis)

        return tf.nest.map_structure(one, value)


_MULTI_WORKER = []  # the process's one (task, strategy, peer_timeout): one collective set-up


def check_peer_timeout(value):
    """``value`` when it is a number of seconds > 0 (``train.peer_timeout``), else a ReIDError."""
    if not is_number(value, above=0):
        raise ReIDError(
            "train.peer_timeout must be the seconds > 0 that a worker waits for the others "
            f"(default {PEER_TIMEOUT:g}), got {value!r}."
        )
    return value


def multi_worker_strategy(peer_timeout=PEER_TIMEOUT):
    """The process's ``tf.distribute.MultiWorkerMirroredStrategy``, built from ``TF_CONFIG``.

    ``TF_CONFIG`` is checked first (:func:`worker_task`), then every other task
    of the cluster must answer at its address within ``peer_timeout`` seconds,
    else a one-line ReIDError names those that did not
    (:func:`~keras_reid.training.cluster.wait_for_peers`); from then on SIGTERM
    and SIGINT raise :class:`~keras_reid.training.cluster.Stopped` in the main
    thread. TensorFlow configures the collective ops once, before any other
    TensorFlow op runs, so the strategy is made once per process (later calls
    return it) and must come first: :func:`runtime` makes it before anything
    else, and the CLI before it reads data. A script of its own should call
    this at its top, and :func:`finish_multi_worker` at its end.
    """
    task = worker_task()
    if not _MULTI_WORKER:
        check_peer_timeout(peer_timeout)
        stop_on_signals()
        wait_for_peers((task.name, dict(task.tasks)[task.name]), task.peers, peer_timeout)
        try:
            strategy = _MultiWorkerStrategy()
        except RuntimeError as error:
            raise ReIDError(
                f"train.distribute multi_worker: {error}: TensorFlow ran an op in this process "
                "before the strategy was made; call keras_reid.training.distribute."
                "multi_worker_strategy() at the top of the script."
            ) from None
        stop_on_signals()  # TensorFlow's coordination service took SIGTERM over
        _MULTI_WORKER.append((task, strategy, peer_timeout))
        logger.info(
            "multi-worker training: task %s %d of %d, %d replicas in all",
            task.type,
            task.index,
            task.num_tasks,
            strategy.num_replicas_in_sync,
        )
    return _MULTI_WORKER[0][1]


def finish_multi_worker():
    """End a multi-worker run on every worker together, once its files are written.

    TensorFlow's coordination service runs in the chief's process (worker 0
    when there is no "chief" task), and every other worker sends it heartbeats
    until its own process ends: a chief that ended first left them logging
    TensorFlow's failed heartbeat after a run that succeeded. So every worker
    waits here for all the others (the coordination service's barrier); then
    the chief waits until the others' addresses no longer answer (their
    processes have ended), and ends promptly itself. Each wait lasts at most
    ``train.peer_timeout`` seconds, then a one-line ReIDError. Does nothing in
    a process that made no multi-worker strategy. Call it once, last, after a
    run that succeeded: the CLI does; a script of its own should too.
    """
    if not _MULTI_WORKER:
        return
    task, _, timeout = _MULTI_WORKER[0]
    try:
        context.context().wait_at_barrier("keras_reid_end", int(timeout * 1000))
    except tf.errors.DeadlineExceededError:
        raise ReIDError(
            "the run is written, but the other workers of this multi-worker run did not reach "
            f"its end within train.peer_timeout={timeout:g} s of this one; look at their output."
        ) from None
    except tf.errors.OpError as error:
        reason = (error.message or type(error).__name__).strip().splitlines()[0]
        raise ReIDError(
            "the run is written, but another worker of this multi-worker run stopped or can no "
            f"longer be reached at its end ({reason}); look at the other workers' output."
        ) from None
    if task.is_chief:
        wait_for_peers_to_leave(task.peers, timeout)
        # Python's last garbage collection at exit walks every TensorFlow object
        # (seconds), while the service, still up, counts the departed workers'
        # missing heartbeats: past its timeout it would log them as crashed.
        gc.freeze()


def start_multi_worker(config, train="train"):
    """Make the multi-worker strategy that ``config`` asks for, first of all; None if it does not.

    For a command that reads a whole config (``keras-reid train``): TensorFlow
    sets a multi-worker run up only before its first op, so this comes before
    any data is read. What can be checked on one machine is checked before
    the wait for the other workers: ``TF_CONFIG``, ``train.peer_timeout``, and
    that each batch section's P (and a cross-domain ``target_size``) splits
    evenly over the replicas, the workers times this machine's GPUs (or 1).

    Args:
        config: the whole config mapping.
        train: the dotted path of its train section: "train", or
            "embedding.train" for EmbAE (its stage 1 is a run of the shared path).
    """
    *path, key = train.split(".")
    parent = config
    for part in path:
        parent = parent.get(part) if isinstance(parent, dict) else None
    section = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(section, dict) or section.get("distribute") != "multi_worker":
        return None
    task = worker_task()
    timeout = check_peer_timeout(section.get("peer_timeout", PEER_TIMEOUT))
    devices = max(1, len(tf.config.list_physical_devices("GPU")))
    _check_split(parent, task.num_tasks, devices)
    return multi_worker_strategy(timeout)


def _check_split(config, workers, devices):
    """Refuse a batches section (or a stage's) whose batch the replicas cannot share evenly."""
    replicas = workers * devices
    base = config.get("batches")
    base = base if isinstance(base, dict) else {}
    sections = [("batches", base)]
    stages = config.get("stages")
    for name, changes in (stages if isinstance(stages, dict) else {}).items():
        batches = changes.get("batches") if isinstance(changes, dict) else None
        if isinstance(batches, dict):
            sections.append((f"stages.{name}.batches", {**base, **batches}))
    default_p = inspect.signature(pk_batches).parameters["p"].default  # every kind's
    for where, batches in sections:
        values = {"p": batches.get("p", default_p)}
        if batches.get("kind") == "cross_domain":
            values["target_size"] = batches.get("target_size")
        for name, value in values.items():
            if is_int(value) and value % replicas:
                raise ReIDError(
                    f"{where}.{name}={value} cannot be split evenly across the {replicas} "
                    f"replicas of this run ({workers} workers x {devices} device(s) each): "
                    f"each replica takes an equal part of every batch (P/replicas whole "
                    f"identities); use a {name} that is a multiple of {replicas}."
                )


def run_folder(out, options):
    """``(folder, is_chief)``: where this process writes the run ``out``.

    On one machine, and on the chief of a multi-worker run, it is ``out``
    itself. Every other worker of a multi-worker run keeps its own folder
    ``out/workers/<index>`` (its config, classes.json, log.csv, its resumable
    ``backup/`` and at the end its ``model.keras``, no checkpoints nor
    TensorBoard): it never writes into the chief's files, and a restarted
    worker resumes from its own backup, whether or not ``out`` is shared
    between the machines.
    """
    if options.distribute != "multi_worker":
        return out, True
    task = worker_task()
    if task.is_chief:
        return out, True
    return os.path.join(out, "workers", str(task.index)), False


def barrier(strategy):
    """Wait until every worker of a multi-worker run reaches this point (one tiny all-reduce)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        one = strategy.experimental_distribute_values_from_function(lambda _: tf.constant(1.0))
        strategy.reduce("SUM", one, axis=None)


def check_same_step(strategy, step):
    """Refuse a multi-worker resume whose workers restored backups of different steps.

    Every worker gets the same verdict (from the sums of the steps and of
    their squares over the replicas), so they all stop together.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    moments = tf.constant([step, step * step], tf.float64)
    per_replica = strategy.experimental_distribute_values_from_function(lambda _: moments)
    total = strategy.reduce("SUM", per_replica, axis=None).numpy()
    count = strategy.num_replicas_in_sync
    mean = total[0] / count
    if total[1] / count - mean * mean > 1e-6:
        raise ReIDError(
            f"--resume: the workers' backups are at different steps (this worker's: {step}, the "
            f"mean over the workers: {mean:g}); copy one worker's backup folder over the others' "
            "(the chief's is OUT/backup, worker I's OUT/workers/I/backup), then resume all again."
        )


class SyncStatistics(keras.callbacks.Callback):
    """Average the replicas' BatchNorm statistics at each epoch end (multi-worker runs).

    The moving mean and variance are updated by each replica from its own
    slice of the batch and never synchronised (Keras gives them no
    aggregation), so each worker would end with its own. Averaging them over
    the replicas before the epoch's checkpoint and backup gives every worker
    the same model, and the saved statistics see the whole global batch.
    Put it first among the callbacks.
    """

    def __init__(self):
        super().__init__()
        self._average = None

    def on_epoch_end(self, epoch, logs=None):
        if self._average is None:  # one graph: eager strategy calls are slow and warn
            self._average = tf.function(self._average_statistics)
        self._average()

    def _average_statistics(self):
        strategy = self.model.distribute_strategy
        for variable in self.model.non_trainable_variables:
            value = variable.value
            if (
                not isinstance(value, tf.distribute.DistributedValues)
                or not value.dtype.is_floating
            ):
                continue
            # Read in a replica's context, a mirrored variable is that replica's copy.
            local = strategy.run(lambda v=value: tf.identity(v))
            value.assign(strategy.reduce("MEAN", local, axis=None))
