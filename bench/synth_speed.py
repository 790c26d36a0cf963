"""How fast SynthReID writes a preset: images per second, and seconds for 5,000 images.

Usage: python bench/synth_speed.py [--preset synth-a] [--ids 300] [--workers N]

The target is 5,000 images at 128x64 in under 30 s on 2 cores.
"""

import argparse
import os
import shutil
import tempfile
import time

from keras_reid.data import synthreid as synthetic
from keras_reid.data.synthreid import generation


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="synth-a", choices=sorted(synthetic.PRESETS))
    parser.add_argument("--ids", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    workers = args.workers or generation._default_workers()
    scratch = tempfile.mkdtemp(prefix="synth-speed-")
    try:
        start = time.perf_counter()
        root = synthetic.generate(
            args.preset, os.path.join(scratch, "out"), ids=args.ids, workers=workers
        )
        seconds = time.perf_counter() - start
        images = sum(synthetic.read_meta(root)["counts"].values())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rate = images / seconds
    print(
        f"{args.preset}: {images} images at 128x64 in {seconds:.1f} s with {workers} worker(s): "
        f"{rate:.0f} images/s, {5000 / rate:.1f} s for 5,000 images"
    )


if __name__ == "__main__":
    main()
