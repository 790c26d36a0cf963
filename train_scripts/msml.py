"""MSML (Xiao et al.): softmax + one metric loss (Cls, Tri, Quad, TriHard or MSML) on
one or several merged datasets, on the shared training path.

    python train_scripts/msml.py --config train_scripts/configs/msml_msml.yaml \
        --out runs/msml_resnet50 [--resume] [section.key=value ...]

The same as ``keras-reid train msml ...``. The configs: msml_{cls,tri,quad,
trihard,msml}.yaml (ResNet50, the paper's size), msml_{bn_inception,resnext50}_*.yaml
(the paper's other trunks), msml_synth_*.yaml (SynthReID on 2 CPU cores; all
thirty runs of its Table 1: train_scripts/msml_synth_table.sh).
"""

import sys

from keras_reid.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "msml", *sys.argv[1:]]))
