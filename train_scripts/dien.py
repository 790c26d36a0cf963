"""DIEN, the domain-invariant embedding network: a labelled source and an unlabelled target,
on the shared training path (cross-domain batches, IC + CCCDTL + DC, RTDA).

    python train_scripts/dien.py --config train_scripts/configs/dien_duke_market_rtda_t3.yaml \
        --out runs/dien_duke_market [--resume] [section.key=value ...]

The same as ``keras-reid train dien ...``. The configs: dien_<transfer>_<row>.yaml
for DukeMTMC-reID -> Market-1501 and Market-1501 -> DukeMTMC-reID, every row of
the paper's Table I (base, tl, cccdtl, dc, cccdtl_dc, rtda_t1..rtda_t5);
dien_synth_{ab,ba}_<row>.yaml (SynthReID on 2 CPU cores, both ways; all of it:
train_scripts/dien_synth_table.sh).
"""

import sys

from keras_reid.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "dien", *sys.argv[1:]]))
