"""Sharded feature extraction: one machine against N shards, through the installed CLI.

Writes a Market-1501-layout tree whose gallery has ``--images`` crops
(default 19,732, Market-1501's gallery) of random pixels at 128x64, and a
MobileNet alpha 0.25 embedding model (random weights: the speed is the
same). Then, each as a ``keras-reid embed`` process:

- ``whole``: the whole gallery in one process;
- ``shards``: ``--num-shards`` processes, started together, one shard each
  (on one machine they share its cores, so this measures the overhead of
  sharding, not the speed-up of N machines, which is N x a shard's rate).

Prints a process's start-up (embedding the 8-image query split), wall time
and images per second of each, the Parquet bytes per
image, the time to read the shards back (``read_features``), and whether the
shards' concatenation equals the whole run bit for bit. Nothing is asserted.

Usage:
    python bench/sharded_embed.py [--images 19732] [--num-shards 2] [--batch-size 128]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

SCRIPT = str(Path(sys.executable).with_name("keras-reid"))


def write_market_tree(root, images, seed=0):
    rng = np.random.default_rng(seed)
    for sub, count in (("bounding_box_train", 8), ("query", 8), ("bounding_box_test", images)):
        folder = Path(root, sub)
        folder.mkdir(parents=True)
        for i in range(count):
            pid, cam = i // 8 + 1, i % 6 + 1
            name = f"{pid:04d}_c{cam}s1_{i:06d}_01.jpg"
            # Every crop its own (coarse) pixels: repeated images would give
            # repeated embeddings, which Parquet's dictionary encoding shrinks.
            coarse = rng.integers(0, 256, size=(16, 8, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / name), cv2.resize(coarse, (64, 128)))


def embed(args, model, data, out, shard=0, num_shards=1, split="gallery"):
    command = [SCRIPT, "embed", model, "--data", data, "--out", out, "--split", split]
    command += ["--shard", str(shard), "--num-shards", str(num_shards)]
    command += ["--batch-size", str(args.batch_size)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait(processes):
    for process in processes:
        _, err = process.communicate()
        if process.returncode:
            sys.exit(f"keras-reid embed failed: {err.decode(errors='replace').strip()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=19732)
    parser.add_argument("--num-shards", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    import keras

    from keras_reid.models import build_embedding_model
    from keras_reid.serving.gallery import read_features

    with tempfile.TemporaryDirectory() as base:
        root = os.path.join(base, "market")
        write_market_tree(root, args.images)
        model = os.path.join(base, "model.keras")
        keras.utils.set_random_seed(0)
        build_embedding_model(
            backbone="mobilenet", alpha=0.25, weights=None, input_shape=(128, 64, 3)
        ).save(model)
        data = f"market1501:{root}"

        start = time.perf_counter()  # a process's fixed cost: TensorFlow, the model, tracing
        wait([embed(args, model, data, os.path.join(base, "query"), split="query")])
        startup = time.perf_counter() - start
        start = time.perf_counter()
        wait([embed(args, model, data, os.path.join(base, "whole"))])
        whole_seconds = time.perf_counter() - start
        start = time.perf_counter()
        shards = os.path.join(base, "shards")
        wait(
            [
                embed(args, model, data, shards, shard, args.num_shards)
                for shard in range(args.num_shards)
            ]
        )
        shard_seconds = time.perf_counter() - start

        start = time.perf_counter()
        sharded = read_features([shards])
        read_seconds = time.perf_counter() - start
        whole = read_features([os.path.join(base, "whole")])
        size = sum(f.stat().st_size for f in Path(shards).glob("*.parquet"))
        exact = np.array_equal(whole.embeddings, sharded.embeddings) and whole.table.equals(
            sharded.table
        )
        n = args.images
        dim = whole.embeddings.shape[1]
        print(f"gallery: {n} images 128x64, MobileNet alpha 0.25, {dim}-d, batch {args.batch_size}")
        print(f"  a process's start-up (8 images): {startup:.1f} s")
        print(f"  whole, 1 process:      {whole_seconds:7.1f} s  {n / whole_seconds:7.0f} img/s")
        print(
            f"  {args.num_shards} shards, together:  {shard_seconds:7.1f} s  "
            f"{n / shard_seconds:7.0f} img/s (one machine's cores shared)"
        )
        print(f"  Parquet: {size / n:.0f} bytes/image ({size / 2**20:.1f} MiB)")
        print(f"  read_features of the shards: {read_seconds:.2f} s")
        print(f"  shards concatenated == whole, bit for bit: {exact}")


if __name__ == "__main__":
    main()
