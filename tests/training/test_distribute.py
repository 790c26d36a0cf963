"""MirroredStrategy on two logical CPU devices, in a subprocess (devices are set at start)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    import keras_reid
    from keras_reid.losses import BatchHardTripletLoss

    def make():
        keras.utils.set_random_seed(0)
        x = keras.Input((8,))
        return keras.Model(x, {"embedding": keras.layers.Dense(4, name="embedding")(x)})

    rng = np.random.default_rng(0)
    p, k = 4, 2
    x = rng.normal(size=(p * k, 8)).astype("float32")
    pids = np.repeat(np.arange(p), k).astype("int32")
    loss, single, half = BatchHardTripletLoss(), make(), p * k // 2
    halves = [float(loss(pids[s], single(x[s])["embedding"]))
              for s in (slice(0, half), slice(half, None))]
    whole = float(loss(pids, single(x)["embedding"]))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = make()
        model.compile(optimizer=keras.optimizers.SGD(0.0),
                      loss={"embedding": BatchHardTripletLoss()})
    batch = tf.data.Dataset.from_tensors((x, {"embedding": pids}))
    distributed = model.fit(batch, epochs=1, verbose=0).history["loss"][0]
    print(strategy.num_replicas_in_sync, distributed, np.mean(halves), whole)
    """
)


def test_mirrored_loss_equals_single_device_loss_on_the_two_halves():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    replicas, distributed, halves, whole = result.stdout.split()[-4:]
    assert int(replicas) == 2
    # Each replica gets whole P*K groups (P/2 ids); the reported loss is the
    # mean of the two replicas' batch-hard losses, not the whole batch's.
    assert abs(float(distributed) - float(halves)) < 1e-5
    assert abs(float(halves) - float(whole)) > 1e-3


CROSS_DOMAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import cv2, keras, numpy as np
    from keras_reid.data import cross_domain_batches, make_table
    from keras_reid.losses import CrossDomainTripletLoss

    folder = sys.argv[1]
    rng = np.random.default_rng(0)

    def table(name, ids, per_id):
        records = []
        for pid in range(ids):
            for camid in range(per_id):
                path = f"{folder}/{name}_{pid}_{camid}.png"
                cv2.imwrite(path, rng.integers(0, 256, (8, 4, 3), dtype=np.uint8))
                records.append((path, pid, camid))
        return make_table(records, name)

    source, target = table("source", 4, 3), table("target", 8, 1)
    p, k, target_size = 4, 2, 4
    batches = cross_domain_batches(
        source, target, p, k, target_size, (8, 4), augment=False, seed=0, num_replicas=2
    ).take(1)
    images, labels = next(iter(batches))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for _, replica_labels in strategy.experimental_distribute_dataset(batches):
        for part in strategy.experimental_local_results(replica_labels):
            part = part.numpy()
            print("replica", int((part == -1).sum()), int((part >= 0).sum()))

    def make():
        keras.utils.set_random_seed(0)
        x = keras.Input((8, 4, 3))
        y = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(x))
        return keras.Model(x, {"embedding": keras.layers.Dense(4, name="embedding")(y)})

    with strategy.scope():
        model = make()
        model.compile(optimizer=keras.optimizers.SGD(0.0),
                      loss={"embedding": CrossDomainTripletLoss(0.3, lam=1.0)})
    distributed = model.fit(
        batches.map(lambda x, y: (x, {"embedding": y})), epochs=1, verbose=0
    ).history["loss"][0]
    single = make()
    single.set_weights(model.get_weights())
    halves = [(images[s], labels[s]) for s in (slice(0, 6), slice(6, None))]

    def loss(lam, x, y):
        return float(CrossDomainTripletLoss(0.3, lam=lam)(y, single(x)["embedding"]))

    centering = [loss(1.0, x, y) - loss(0.0, x, y) for x, y in halves]
    whole = loss(1.0, images, labels)
    print(strategy.num_replicas_in_sync, distributed, np.mean([loss(1.0, x, y) for x, y in halves]),
          whole, *centering)
    """
)


def test_mirrored_cross_domain_batches_give_each_replica_both_domains(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", CROSS_DOMAIN_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    # Each replica: its 2 whole identities x K=2 source rows, then 2 target rows.
    assert [line.split()[1:] for line in lines if line.startswith("replica")] == [["2", "4"]] * 2
    replicas, distributed, halves, whole, *centering = lines[-1].split()
    assert int(replicas) == 2
    # The reported loss is the mean of the replicas' losses, each over its own
    # source and target rows, so each replica's centering term is non-zero.
    assert abs(float(distributed) - float(halves)) < 1e-5
    assert all(float(term) > 1e-4 for term in centering), centering
    assert abs(float(halves) - float(whole)) > 1e-4
