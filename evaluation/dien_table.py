"""DIEN's ablation (Table I) from finished runs: the target's Rank-1/5/10 and mAP.

    python evaluation/dien_table.py runs/dien_synth_ab/*_s? --data synth-b \
        [--out table.md] [--csv scores.csv]

Each run folder is what ``keras-reid train dien`` writes. A run's row is read
from its config as Table I names it: Base (identity classifier only), +TL
(Zhong et al.'s cross-domain triplet), +CCCDTL, +DC (domain classifier),
+CCCDTL+DC, +CCCDTL+DC+RTDA(T=n); its seed too. Give the runs of one
transfer (source -> target) and the target's test set as --data. Prints
Rank-1, Rank-5, Rank-10 and mAP (mean ± std over seeds) per row, and the
paper's claims as paired differences over seeds with 95% t-intervals: TL
beats Base, CCCDTL beats TL, DC helps, CCCDTL and DC add up, RTDA (T=3) helps.
The controls, where their rows are given (the summed CCCDTL, the ramped
reversal, the trunk at another rate, Base on cross-domain batches), are paired
with the rows they control in a table of their own; and the domain
classifier's loss and accuracy at the last epoch of each row (from log.csv)
tell whether the domains were still told apart (ln 2 = 0.693 and 0.5: no longer).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keras_reid imports TensorFlow

from keras_reid.evaluation.claims import (
    DIEN_CLAIMS,
    DIEN_CONTROLS,
    DIEN_LOG_COLUMNS,
    DIEN_ORDER,
    DIEN_SCORES,
    dien_labels,
)
from keras_reid.evaluation.compare import table_script


def main(argv=None):
    return table_script(
        argv,
        "dien_table",
        __doc__,
        dien_labels,
        DIEN_ORDER,
        DIEN_CLAIMS,
        DIEN_SCORES,
        controls=DIEN_CONTROLS,
        log_columns=DIEN_LOG_COLUMNS,
    )


if __name__ == "__main__":
    sys.exit(main())
