"""The EmbAE paper's tables from finished runs: one table per setting, mean ± std over seeds.

    python evaluation/embae_tables.py runs/embae_synth_s0 runs/embae_synth_s1 \
        runs/embae_synth_multi_s0 [--out tables.md] [--csv means.csv]

Each run folder is what ``keras-reid train embae`` (or ``keras-reid demo``'s
quick/ or full/ folder) writes: results.csv and config.yaml. Runs of the same
sources and target form one table (Table 1: one source, Table 2: several);
several runs of a setting (seeds) give "mean ± std"; every row shows its change
over the baseline (the stage-1 embedding) in brackets, as in the paper. Works
for any run folder with a results.csv of that form (e.g. embedding runs).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keras_reid imports TensorFlow

from keras_reid.errors import ReIDError
from keras_reid.evaluation.reports import SCORE_COLUMNS, collect_runs, runs_table
from keras_reid.fileio import atomic_output, write_text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished run folders")
    parser.add_argument("--out", help="also write the markdown tables to this file")
    parser.add_argument("--csv", help="write the mean and std per setting and model (CSV)")
    args = parser.parse_args(argv)
    try:
        frame = collect_runs(args.runs)
        text = runs_table(frame)
        print(text)
        if args.out:
            write_text(args.out, text)
        if args.csv:
            grouped = frame.groupby(["setting", "model"], sort=False)[list(SCORE_COLUMNS)]
            summary = grouped.agg(["mean", "std"])
            summary.columns = [f"{score}_{stat}" for score, stat in summary.columns]
            summary.insert(0, "runs", grouped.size())
            with atomic_output(args.csv) as temporary:
                summary.reset_index().to_csv(temporary, index=False)
    except ReIDError as error:
        print(f"embae_tables: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
