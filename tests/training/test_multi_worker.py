"""train.distribute: multi_worker: two worker processes on localhost, and bad TF_CONFIGs."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections import Counter

import keras
import numpy as np
import pytest
import yaml
from console import finish, run, start

from keras_reid.errors import ReIDError
from keras_reid.training.distribute import worker_task

P, K, EPOCHS = 4, 2, 2

# A worker: the strategy first (as the CLI makes it), then the shared training
# path with a batch-hard loss that appends the labels each replica's loss
# receives, one line per step, to RECORD-<replica>.txt; at the end the model's
# and the optimizer's variables go to WEIGHTS.
WORKER = textwrap.dedent(
    """
    import sys
    from keras_reid.training.distribute import multi_worker_strategy

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
    from keras_reid.data.pipeline import pk_batches, steps_per_epoch

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
    ],
)
def test_a_bad_tf_config_is_one_line_naming_the_fix(value, expected):
    environ = {} if value is None else {"TF_CONFIG": value}
    with pytest.raises(ReIDError, match=expected) as raised:
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
    """The user's way: the same ``keras-reid train`` on each worker, only TF_CONFIG differs."""
    config, out = cli_config(tiny_synth, tmp_path), tmp_path / "run"
    ports = free_ports(2)
    args = ["train", "msml", "--config", config, "--out", out, "--distribute", "multi_worker"]
    workers = [
        start(args, env={"TF_CONFIG": tf_config(ports, index), "CUDA_VISIBLE_DEVICES": ""})
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
