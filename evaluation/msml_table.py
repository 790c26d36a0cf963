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

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keras_reid imports TensorFlow

from keras_reid.comparison import MSML_ORDERINGS, differences_table, method_table, score_runs
from keras_reid.errors import ReIDError
from keras_reid.fileio import atomic_output, write_text


def dataset_spec(text):
    """``name[:root]`` as given, or a YAML mapping ``{name: ..., ...}`` as a dict."""
    if not text.lstrip().startswith("{"):
        return text
    import yaml

    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"not a YAML mapping: {text!r} ({error})") from None
    if not isinstance(spec, dict) or "name" not in spec:
        raise argparse.ArgumentTypeError(f"a mapping needs a 'name': {text!r}")
    return spec


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished run folders")
    parser.add_argument("--data", nargs="+", required=True, type=dataset_spec, help="test datasets")
    parser.add_argument("--tta", choices=["flip"], help="test-time augmentation")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", help="also write the markdown tables to this file")
    parser.add_argument("--csv", help="write every (run, dataset) score row to this CSV")
    args = parser.parse_args(argv)
    try:
        frame = score_runs(args.runs, args.data, tta=args.tta, batch_size=args.batch_size)
        text = (
            'Mean ± std over seeds; "mean" averages the datasets per run.\n\n'
            + method_table(frame)
            + "\nThe paper's orderings, paired by seed (a − b, the datasets' mean):\n\n"
            + differences_table(frame, MSML_ORDERINGS)
        )
        print(text)
        if args.out:
            write_text(args.out, text)
        if args.csv:
            with atomic_output(args.csv) as temporary:
                frame.to_csv(temporary, index=False)
    except ReIDError as error:
        print(f"msml_table: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
