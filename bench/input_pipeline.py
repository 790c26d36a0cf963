"""Images per second delivered by pk_batches, against what training consumes.

Generates a SynthReID tree (``synth-a``, 128×64 JPEGs in the Market-1501
layout) into a temporary folder, then iterates ``pk_batches`` over its train
split for a few seconds at two configurations, with and without ``cache``:

- default: 256×128, P=18, K=4, augmentation on; MobileNet (alpha 1.0) trains
  at about 11 images/s at this size on 2 CPU cores;
- small: 64×32, same batch; MobileNet alpha 0.25 trains at about 750 images/s.

The pipeline keeps up when it delivers at least 5× what training consumes
(the ``target`` column). Figures depend on the machine and its load; this
prints them and asserts nothing.

Usage:
    python bench/input_pipeline.py --ids 300 --seconds 8
"""

import argparse
import os
import tempfile
import time

from keras_reid.data.market1501 import market1501
from keras_reid.data.samplers import pk_batches
from keras_reid.data.synthreid import generate

CONFIGS = (
    # name, image_size, training consumption (images/s on 2 cores)
    ("default", (256, 128), 11.0),
    ("small", (64, 32), 750.0),
)
TARGET = 5.0


def images_per_second(table, image_size, p, k, cache, seconds, warmup):
    """(setup seconds to the first batch, images/s over ``seconds`` after ``warmup`` batches)."""
    start = time.perf_counter()
    batches = iter(pk_batches(table, p=p, k=k, image_size=image_size, seed=0, cache=cache))
    next(batches)
    setup = time.perf_counter() - start
    for _ in range(warmup):
        next(batches)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images, _ = next(batches)
        count += int(images.shape[0])
    return setup, count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--ids", type=int, default=300, help="SynthReID identities, half for training (300)"
    )
    parser.add_argument(
        "--source-size",
        type=int,
        nargs=2,
        default=(128, 64),
        metavar=("H", "W"),
        help="size of the generated JPEGs (128 64, Market-1501's)",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="timing per row (8)")
    parser.add_argument("--warmup", type=int, default=5, help="batches before timing (5)")
    parser.add_argument("--p", type=int, default=18, help="identities per batch (18)")
    parser.add_argument("--k", type=int, default=4, help="images per identity (4)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="keras_reid_bench_") as folder:
        root = generate(
            "synth-a", os.path.join(folder, "synth-a"), ids=args.ids, size=tuple(args.source_size)
        )
        table = market1501(root).train
        print(
            f"synth-a train: {len(table)} JPEGs of {args.source_size[0]}x{args.source_size[1]}, "
            f"{table.pid.nunique()} ids; P={args.p} K={args.k}, augmentation on, "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other work "
            "on the machine lowers the figures)"
        )
        header = (
            f"{'config':<8} {'size':>7} {'cache':>5} {'setup s':>8} {'images/s':>9} "
            f"{'trains at':>9} {'ratio':>6}  target {TARGET:.0f}x"
        )
        print(header)
        print("-" * len(header))
        for name, size, consumption in CONFIGS:
            for cache in (False, True):
                setup, rate = images_per_second(
                    table, size, args.p, args.k, cache, args.seconds, args.warmup
                )
                ratio = rate / consumption
                print(
                    f"{name:<8} {size[0]:>3}x{size[1]:<3} {str(cache):>5} {setup:>8.1f} "
                    f"{rate:>9.0f} {consumption:>9.0f} {ratio:>6.1f}  "
                    f"{'met' if ratio >= TARGET else 'MISSED'}"
                )


if __name__ == "__main__":
    main()
