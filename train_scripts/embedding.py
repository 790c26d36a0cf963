"""EmbAE stage 1: train a metric embedding from a YAML config.

    python train_scripts/embedding.py --config train_scripts/configs/embedding_synth.yaml \
        --out runs/embedding_synth [--resume] [section.key=value ...]

The same as ``keras-reid train embedding ...``.
"""

import sys

from keras_reid.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "embedding", *sys.argv[1:]]))
