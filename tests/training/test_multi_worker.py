"""train.distribute: multi_worker: two worker processes on localhost, and bad TF_CONFIGs."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from console import finish, run, start

from keras_reid.errors import ReIDError
from keras_reid.training.cluster import wait_for_peers_to_leave
from keras_reid.training.distribute import worker_task

P, K, EPOCHS = 4, 2, 2
INJECT = str(Path(__file__).resolve().parents[1] / "faults" / "inject")  # its sitecustomize.py

# A worker: the strategy first (as the CLI makes it), then the shared training
# path with a batch-hard loss that appends the labels each replica's loss
# receives, one line per step, to RECORD-<replica>.txt; at the end the model's
# and the optimizer's variables go to WEIGHTS, and the workers end together.
WORKER = textwrap.dedent(
    """
    import sys
    from keras_reid.training.distribute import finish_multi_worker, multi_worker_strategy

    multi_worker_strategy()
    import numpy as np
    import tensorflow as tf
    import yaml
    from keras_reid.losses import LOSSES, BatchHardTripletLoss
    from keras_reid.training.recipe import train

    config_path, out, record, weights = sys.argv[1:]

    def write(labels, replica):
        with open(f"{record}-{int(replica)}.txt", "a") as stream:
            stream.write(" ".join(map(str, labels.numpy().tolist())) + "\\n")
        return np.int32(0)

    @LOSSES.register("recording_batch_hard")
    class Recording(BatchHardTripletLoss):
        def call(self, y_true, y_pred):
            context = tf.distribute.get_replica_context()
            if context is None:  # Keras' symbolic build of the loss, not a step
                return super().call(y_true, y_pred)
            done = tf.py_function(write, [y_true, context.replica_id_in_sync_group], tf.int32)
            with tf.control_dependencies([done]):
                return super().call(y_true, y_pred)

    with open(config_path) as stream:
        model = train(yaml.safe_load(stream), out)
    values = [np.asarray(v) for v in (*model.variables, *model.optimizer.variables)]
    np.savez(weights, *values)
    finish_multi_worker()
    """
)


def tiny_config(root):
    return {
        "data": {"train": [{"name": "synth-a", "root": root, "ids": 12, "size": [64, 32]}]},
        "model": {
            "name": "trinet",
            "backbone": "small_convnet",
            "input_shape": [64, 32, 3],
            "embedding_dim": 8,
            "backbone_options": {"widths": [8, 16]},
        },
        "batches": {"kind": "pk", "p": P, "k": K, "augment": False},
        "losses": {"embedding": {"name": "recording_batch_hard"}},
        "optimizer": {"name": "adam"},
        "schedule": {"name": "piecewise", "boundaries": [1], "values": [1e-3, 1e-4]},
        "train": {"epochs": EPOCHS, "verbose": 0, "distribute": "multi_worker"},
    }


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports, index):
    workers = [f"localhost:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def whole_groups(labels, ids):
    """True when ``labels`` is ``ids`` identities of K consecutive equal labels each."""
    groups = [labels[i : i + K] for i in range(0, len(labels), K)]
    return (
        len(labels) == ids * K
        and all(len(set(group)) == 1 for group in groups)
        and len({group[0] for group in groups}) == ids
    )


@pytest.fixture(scope="module")
def two_workers(tiny_synth, tmp_path_factory):
    """Train on two workers; the run folder, the recorded labels and each worker's weights."""
    base = tmp_path_factory.mktemp("multi_worker")
    config = base / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_synth["synth-a"])))
    out, record = base / "run", base / "labels"
    ports = free_ports(2)
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": tf_config(ports, index),
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        command = [sys.executable, "-c", WORKER, config, out, record, base / f"weights{index}.npz"]
        workers.append(
            subprocess.Popen(
                list(map(str, command)),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        results = [worker.communicate(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err[-3000:]
    return out, record, base


def test_each_replica_receives_whole_groups_of_the_same_global_batch(two_workers, tiny_synth):
    from keras_reid.data import load_dataset
    from keras_reid.data.labels import ClassMap
    from keras_reid.data.pipeline import steps_per_epoch
    from keras_reid.data.samplers import pk_batches

    _, record, _ = two_workers
    replicas = [
        [[int(float(x)) for x in line.split()] for line in open(f"{record}-{replica}.txt")]
        for replica in range(2)
    ]
    table = load_dataset("synth-a", tiny_synth["synth-a"], ids=12, size=(64, 32)).train
    steps = EPOCHS * steps_per_epoch([table], P, K)
    assert [len(batches) for batches in replicas] == [steps, steps]
    # The global batches that one process would train on, in order.
    stream = pk_batches(
        table, P, K, (64, 32), augment=False, seed=0, class_map=ClassMap.from_tables([table])
    )
    expected = [labels.numpy().tolist() for _, labels in stream.take(steps)]
    for step, (first, second) in enumerate(zip(*replicas, strict=True)):
        # Each replica: P/2 identities, K consecutive images each ...
        assert whole_groups(first, P // 2) and whole_groups(second, P // 2), (step, first, second)
        # ... no identity on both, and together the global batch of that step.
        assert not set(first) & set(second)
        assert first + second == expected[step]
        assert Counter(first + second) == Counter({pid: K for pid in set(first + second)})


def test_both_workers_end_with_the_same_weights(two_workers):
    _, _, base = two_workers
    with np.load(base / "weights0.npz") as chief, np.load(base / "weights1.npz") as other:
        assert len(chief.files) == len(other.files) > 0
        for name in chief.files:
            assert np.array_equal(chief[name], other[name]), name


def test_only_the_chief_writes_the_run_folder(two_workers):
    out, _, _ = two_workers
    assert (out / "model.keras").is_file() and (out / "config.yaml").is_file()
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 1 + EPOCHS and log[0].startswith("epoch,")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"epoch_{EPOCHS:04d}.keras"]
    assert not (out / "backup").exists()  # deleted once model.keras is written
    # The other worker keeps its own folder: config, log, final model; no checkpoints.
    worker = out / "workers" / "1"
    assert sorted(p.name for p in worker.iterdir()) == [
        "classes.json",
        "config.yaml",
        "log.csv",
        "model.keras",
    ]
    assert sorted(p.name for p in (out / "workers").iterdir()) == ["1"]


GOOD = {"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker"}}


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, "TF_CONFIG, which is not set"),
        ("{cluster: worker}", "TF_CONFIG is not valid JSON"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), "no cluster.worker list"),
        (json.dumps({**GOOD, "cluster": {"worker": []}}), "no cluster.worker list"),
        (json.dumps({**GOOD, "task": {"type": "ps", "index": 0}}), "task.type must be"),
        (json.dumps({**GOOD, "task": {"type": "chief", "index": 0}}), "task.type must be"),
        (json.dumps({**GOOD, "task": {"type": "worker", "index": 2}}), "in 0..1"),
        (json.dumps({**GOOD, "task": {"type": "worker"}}), "task.index must be"),
        (json.dumps({**GOOD, "cluster": {"worker": ["localhost"]}}), "is 'localhost', not"),
        (json.dumps({**GOOD, "cluster": {"worker": ["h:1", "::1:2"]}}), "worker[1] is '::1:2'"),
        (json.dumps({**GOOD, "cluster": {"worker": ["h:1", "h:99999"]}}), "worker[1] is 'h:99999'"),
    ],
)
def test_a_bad_tf_config_is_one_line_naming_the_fix(value, expected):
    environ = {} if value is None else {"TF_CONFIG": value}
    with pytest.raises(ReIDError, match=re.escape(expected)) as raised:
        worker_task(environ)
    message = str(raised.value)
    assert "\n" not in message and '"task": {"type": "worker", "index": I}' in message


def test_tf_config_tasks():
    task = worker_task({"TF_CONFIG": json.dumps({**GOOD, "task": {"type": "worker", "index": 1}})})
    assert (task.index, task.num_tasks, task.is_chief) == (1, 2, False)
    chief = {"cluster": {**GOOD["cluster"], "chief": ["localhost:3"]}}
    task = worker_task({"TF_CONFIG": json.dumps({**chief, "task": {"type": "worker", "index": 0}})})
    assert (task.num_tasks, task.is_chief) == (3, False)
    task = worker_task({"TF_CONFIG": json.dumps({**chief, "task": {"type": "chief", "index": 0}})})
    assert task.is_chief


def cli_config(tiny_synth, folder):
    """The tiny config for ``keras-reid train``: a built-in loss, the strategy from --distribute."""
    settings = tiny_config(tiny_synth["synth-a"])
    settings["losses"] = {"embedding": {"name": "batch_hard"}}
    del settings["train"]["distribute"]
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def test_the_console_script_refuses_a_bad_tf_config_in_one_line(tiny_synth, tmp_path):
    config, out = cli_config(tiny_synth, tmp_path), tmp_path / "run"
    code, _, err = run(
        ["train", "msml", "--config", config, "--out", out, "--distribute", "multi_worker"],
        env={"TF_CONFIG": "not json"},
        timeout=120,
    )
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "TF_CONFIG is not valid JSON" in lines[0], err
    assert not out.exists()


def test_two_console_scripts_train_one_model(tiny_synth, tmp_path):
    """The user's way: the same ``keras-reid train`` on each worker, only TF_CONFIG differs.

    Worker 1 lingers 12 s at its exit, as a slower machine would. Worker 0 hosts TensorFlow's
    coordination service: it once exited first, and worker 1 then logged TensorFlow's failed
    heartbeat (an E line) after a successful run; now each worker's stderr is its one line."""
    config, out = cli_config(tiny_synth, tmp_path), tmp_path / "run"
    ports = free_ports(2)
    args = ["train", "msml", "--config", config, "--out", out, "--distribute", "multi_worker"]
    linger = {
        "PYTHONPATH": os.pathsep.join(filter(None, [INJECT, os.environ.get("PYTHONPATH")])),
        "KERAS_REID_LINGER_AT_EXIT": "12",
    }
    workers = [
        start(
            args,
            env={
                "TF_CONFIG": tf_config(ports, index),
                "CUDA_VISIBLE_DEVICES": "",
                **(linger if index == 1 else {}),
            },
        )
        for index in range(2)
    ]
    try:
        results = [finish(worker, timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for index, (code, stdout, err) in enumerate(results):
        assert code == 0, err
        # stderr: the one line naming the task; TensorFlow's start-up notices are dropped.
        assert err.strip().splitlines() == [
            f"multi-worker training: task worker {index} of 2, 2 replicas in all"
        ], err
        assert stdout.strip().endswith(f"wrote {out}")
    chief = keras.models.load_model(out / "model.keras").get_weights()
    other = keras.models.load_model(out / "workers" / "1" / "model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(chief, other, strict=True))


def test_the_chief_waits_for_the_others_to_end_at_most_peer_timeout():
    """A peer whose address still answers is named once the bound has passed; an ended one
    (its port closed) is not waited for."""
    (ended,) = free_ports(1)
    with socket.create_server(("localhost", 0)) as running:
        port = running.getsockname()[1]
        peers = [("worker 1", f"localhost:{port}"), ("worker 2", f"localhost:{ended}")]
        with pytest.raises(ReIDError) as raised:
            wait_for_peers_to_leave(peers, 0.5)
    message = str(raised.value)
    assert f"worker 1 at localhost:{port} still ran train.peer_timeout=0.5 s" in message, message
    assert "worker 2" not in message and "\n" not in message, message
    assert wait_for_peers_to_leave(peers, 0.5) is None  # both ports closed now


def one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-reid train: "), err
    return lines[0]


@pytest.mark.slow
def test_a_lone_worker_stops_at_train_peer_timeout_and_bad_clusters_at_once(tiny_synth, tmp_path):
    """Three workers in TF_CONFIG, only worker 0 started: one line naming workers 1 and 2 once
    train.peer_timeout has passed (it once waited silently for ever). A P that three workers
    cannot split and an address without a port are refused before any wait (the default
    peer_timeout, 300 s, is longer than the test waits)."""
    config = cli_config(tiny_synth, tmp_path)
    ports = free_ports(3)
    workers = [f"localhost:{port}" for port in ports]
    cases = {
        "alone": (tf_config(ports, 0), ["batches.p=6", "train.peer_timeout=3"]),
        "split": (tf_config(free_ports(3), 0), ["batches.p=4"]),
        "no port": (
            json.dumps({"cluster": {"worker": ["localhost", workers[1]]}, "task": TASK0}),
            [],
        ),
    }
    runs = {}
    for index, (case, (value, extra)) in enumerate(cases.items()):
        out = tmp_path / f"run{index}"
        args = ["train", "msml", "--config", config, "--out", out, "--distribute", "multi_worker"]
        stderr = "pipe" if index % 2 else tmp_path / f"err{index}.txt"
        runs[case] = (start([*args, *extra], stderr=stderr, env={"TF_CONFIG": value}), out)
    try:
        results = {case: finish(popen, timeout=240) for case, (popen, _) in runs.items()}
    finally:
        for popen, _ in runs.values():
            popen.kill()
    for case, (code, _, err) in results.items():
        assert code == 2, (case, err)
        assert not runs[case][1].exists(), case
    alone = one_error_line(results["alone"][2])
    assert "worker 1 at " + workers[1] in alone and "worker 2 at " + workers[2] in alone, alone
    assert "worker 0" not in alone and "train.peer_timeout=3" in alone, alone
    split = one_error_line(results["split"][2])
    assert "batches.p=4" in split and "3 workers" in split and "multiple of 3" in split, split
    no_port = one_error_line(results["no port"][2])
    assert "cluster.worker[0] is 'localhost'" in no_port and "host:port" in no_port, no_port


TASK0 = {"type": "worker", "index": 0}


def listening(port, popen, bound=300):
    """Wait (at most ``bound`` seconds) until ``popen`` accepts connections at ``port``."""
    end = time.monotonic() + bound
    while popen.poll() is None and time.monotonic() < end:
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def test_sigterm_and_sigint_stop_a_worker_waiting_for_its_peers(tiny_synth, tmp_path):
    """Both once went unheard: TensorFlow's wait for the peers holds the interpreter, and its
    coordination service takes SIGTERM over."""
    config = cli_config(tiny_synth, tmp_path)
    runs = {}
    for index, signum in enumerate((signal.SIGTERM, signal.SIGINT)):
        ports = free_ports(3)
        out = tmp_path / f"run{index}"
        args = ["train", "msml", "--config", config, "--out", out, "--distribute", "multi_worker"]
        stderr = "pipe" if index % 2 else tmp_path / f"err{index}.txt"
        env = {"TF_CONFIG": tf_config(ports, 0)}
        runs[signum] = (start([*args, "batches.p=6"], stderr=stderr, env=env), ports[0], out)
    try:
        for signum, (popen, port, _) in runs.items():
            # Worker 0 listens at its own address while it waits for workers 1 and 2.
            assert listening(port, popen), signum
            popen.send_signal(signum)
        results = {signum: finish(popen, timeout=120) for signum, (popen, _, _) in runs.items()}
    finally:
        for popen, _, _ in runs.values():
            popen.kill()
    for signum, (code, _, err) in results.items():
        assert code == 128 + signum, (signum, err)
        assert one_error_line(err) == f"keras-reid train: interrupted by {signum.name}", err
        assert not runs[signum][2].exists()


@pytest.mark.slow
def test_sigterm_stops_a_training_worker_and_the_other_in_one_line_each(tiny_synth, tmp_path):
    """SIGTERM to worker 1 mid-training (it once went unheard): worker 1 stops, and worker 0,
    its collective ops aborted, names the way back instead of a traceback."""
    config, out = cli_config(tiny_synth, tmp_path), tmp_path / "run"
    ports = free_ports(2)
    args = ["train", "msml", "--config", config, "--out", out, "--distribute", "multi_worker"]
    workers = [
        start(
            [*args, "train.epochs=500"],
            stderr=tmp_path / f"err{index}.txt",
            env={"TF_CONFIG": tf_config(ports, index)},
        )
        for index in range(2)
    ]
    log = out / "log.csv"
    try:
        end = time.monotonic() + 300
        while time.monotonic() < end and not (log.exists() and len(log.read_text().split()) > 2):
            time.sleep(0.5)
        workers[1].send_signal(signal.SIGTERM)
        results = [finish(worker, timeout=120) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    (code0, _, err0), (code1, _, err1) = results
    assert code1 == 128 + signal.SIGTERM, err1
    assert err1.strip().splitlines() == [
        "multi-worker training: task worker 1 of 2, 2 replicas in all",  # the run's start
        "keras-reid train: interrupted by SIGTERM",
    ], err1
    # Worker 0 may first pass on TensorFlow's own log of the abort; never a traceback.
    assert code0 == 2 and "Traceback" not in err0, err0
    assert (
        err0.strip()
        .splitlines()[-1]
        .startswith("keras-reid train: error: another worker of this multi-worker run stopped")
    ), err0
    assert not (out / "model.keras").exists()
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".")]
    assert leftovers == [], leftovers  # no temporary file of a write cut short
