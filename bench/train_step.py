"""Training throughput: the bare Keras step versus end-to-end training from disk.

Prints images/s of ``model.fit`` on an in-memory batch (the bare step) and on
``pk_batches`` reading SynthReID JPEGs from disk (the real pipeline), with and
without the decoded-image cache, for the paper configuration (MobileNet alpha
1.0 at 256x128) and the CPU configurations at 64x32 (small_convnet, which the
SynthReID configs use, and MobileNet alpha 0.25). Target: end to end >= 90%
of the bare step.

    python bench/train_step.py [--configs synth,mobilenet-small,paper] [--steps-scale 1]
"""

import argparse
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import keras_reid  # noqa: F401  (registers custom objects)
from keras_reid.data import load_dataset, pk_batches
from keras_reid.data.synthetic import generate
from keras_reid.losses import BatchHardTripletLoss
from keras_reid.models import build_embedding_model

CONFIGS = {
    "paper": {"backbone": "mobilenet", "alpha": 1.0, "size": (256, 128), "steps": 6},
    "mobilenet-small": {"backbone": "mobilenet", "alpha": 0.25, "size": (64, 32), "steps": 60},
    "synth": {"backbone": "small_convnet", "alpha": 1.0, "size": (64, 32), "steps": 40},
}


def compiled_model(backbone, alpha, size):
    model = build_embedding_model(backbone, alpha=alpha, input_shape=(*size, 3))
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss={"embedding": BatchHardTripletLoss()})
    return model


def images_per_second(model, dataset, steps, batch):
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)  # warm up
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return steps * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="synth,mobilenet-small,paper")
    parser.add_argument("--p", type=int, default=18)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply the step counts")
    args = parser.parse_args()
    batch = args.p * args.k
    with tempfile.TemporaryDirectory() as tmp:
        root = generate("synth-a", os.path.join(tmp, "synth-a"), ids=120, size=(128, 64))
        table = load_dataset("synth-a", root, ids=120).train
        print(
            f"{'config':8s} {'bare img/s':>11s} {'disk img/s':>11s} {'ratio':>6s} "
            f"{'disk+cache img/s':>17s} {'ratio':>6s}"
        )
        for name in args.configs.split(","):
            config = CONFIGS[name]
            steps = max(2, int(config["steps"] * args.steps_scale))
            model = compiled_model(config["backbone"], config["alpha"], config["size"])
            rng = np.random.default_rng(0)
            images = rng.uniform(0, 255, (batch, *config["size"], 3)).astype("float32")
            pids = np.repeat(np.arange(args.p), args.k).astype("int32")
            bare = tf.data.Dataset.from_tensors((images, {"embedding": pids})).repeat()
            bare_rate = images_per_second(model, bare, steps, batch)
            rates = []
            for cache in (False, True):
                disk = pk_batches(
                    table, args.p, args.k, image_size=config["size"], seed=0, cache=cache
                ).map(lambda x, y: (x, {"embedding": y}))
                rates.append(images_per_second(model, disk, steps, batch))
            print(
                f"{name:8s} {bare_rate:11.1f} {rates[0]:11.1f} {rates[0] / bare_rate:6.2f} "
                f"{rates[1]:17.1f} {rates[1] / bare_rate:6.2f}"
            )


if __name__ == "__main__":
    main()
