"""The self-attention paper's ablation (Table 1) from finished runs, with and without re-ranking.

    python evaluation/sal_table.py runs/sal_synth/*_s? --data synth-b --both \
        [--out table.md] [--csv scores.csv]

Each run folder is what ``keras-reid train sal`` writes. A run's setting is
read from its config as the table's columns name it (Soft, Quad or Triplet,
DIL, SAC, Multi: e.g. "Soft+Quad+DIL+SAC+Multi" is the full model); its seed
too. Every run is scored on every --data dataset with that dataset's
protocol (``--both``: also with k-reciprocal re-ranking, as the paper reports
both); the scores are kept in the run's scores.csv. Prints mAP and Rank-1
(mean ± std over seeds) per setting, and the paper's claims as paired
differences over seeds with 95% t-intervals: multi-level features help, SAC
adds, softmax and quadruplet complement each other, quadruplet beats triplet.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keras_reid imports TensorFlow

from keras_reid.evaluation.claims import SAL_CLAIMS, SAL_ORDER, sal_labels
from keras_reid.evaluation.compare import table_script


def main(argv=None):
    return table_script(argv, "sal_table", __doc__, sal_labels, SAL_ORDER, SAL_CLAIMS)


if __name__ == "__main__":
    sys.exit(main())
