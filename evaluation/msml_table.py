"""The MSML paper's Table 1 from finished runs: methods x trunks, scored on each test dataset.

    python evaluation/msml_table.py runs/msml_synth/*/*_s? \
        --data synth-a synth-b synth-c [--tta flip] [--out table.md] [--csv scores.csv]

Each run folder is what ``keras-reid train msml`` writes (model.keras and
config.yaml); train_scripts/msml_synth_table.sh trains the SynthReID set. A
run's trunk, method (Cls, Tri, Quad, TriHard, MSML: the metric loss beside
softmax) and seed are read from its config. Every run is scored on every
--data dataset (``name[:root]`` or a YAML mapping such as ``{name: synth-b,
ids: 600}``) with that dataset's protocol; the scores are kept in the run's
scores.csv, so a second call scores only what is new. Prints the table (mAP
and Rank-1 per dataset and their mean over the datasets, mean ± std over
seeds) and the paper's orderings as paired differences over seeds with 95%
t-intervals.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keras_reid imports TensorFlow

from keras_reid.evaluation.claims import METHOD_ORDER, MSML_ORDERINGS, run_labels
from keras_reid.evaluation.compare import table_script


def main(argv=None):
    return table_script(argv, "msml_table", __doc__, run_labels, METHOD_ORDER, MSML_ORDERINGS)


if __name__ == "__main__":
    sys.exit(main())
