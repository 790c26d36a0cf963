"""EmbAE (Potapov et al.): stage-1 embedding, feature cache, autoencoder pre-training on the
sources, unsupervised fine-tuning variants on the target, and the paper's results table.

    python train_scripts/embae.py --config train_scripts/configs/embae_synth.yaml \
        --out runs/embae_synth [--resume] [section.key=value ...]

The same as ``keras-reid train embae ...``.
"""

import sys

from keras_reid.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "embae", *sys.argv[1:]]))
