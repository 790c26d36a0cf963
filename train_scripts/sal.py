"""Self-attention learning (SAL): the dilated multi-level model in two stages (softmax [+ SAC],
then + quadruplet-hard), on the shared training path.

    python train_scripts/sal.py --config train_scripts/configs/sal_market.yaml \
        --out runs/sal_market [--resume] [section.key=value ...]

The same as ``keras-reid train sal ...``. The configs: sal_market.yaml (the full
model), sal_market_<row>.yaml (every row of the paper's Table 1), sal_duke.yaml,
sal_synth_<row>.yaml (SynthReID on 2 CPU cores; all of its ablation:
train_scripts/sal_synth_table.sh).
"""

import sys

from keras_reid.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "sal", *sys.argv[1:]]))
