"""PUL (Fan, Zheng & Yang 2018): a start model, then rounds of k-means on the unlabelled
target, reliable-image selection and fine-tuning; the results table per round.

    python train_scripts/pul.py --config train_scripts/configs/pul_synth.yaml \
        --out runs/pul_synth [--resume] [section.key=value ...]

The same as ``keras-reid train pul ...``.
"""

import sys

from keras_reid.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "pul", *sys.argv[1:]]))
