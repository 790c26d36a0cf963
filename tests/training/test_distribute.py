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
