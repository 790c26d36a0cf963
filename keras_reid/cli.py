"""The ``keras-reid`` command: one console script with subcommands.

Every subcommand calls library functions; no logic lives only here. Errors in
the user's input end the command with one line naming the problem and exit
status 2 (a traceback only with ``--debug``).
"""

import argparse
import logging
import os
import sys

EXIT_USAGE = 2


def _quiet_tensorflow():
    """Silence TensorFlow's C++ start-up chatter before it is first imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        return
    # absl prints one line to fd 2 before logging is configured; hold fd 2 while
    # importing and replay what was written only if the import fails.
    import tempfile

    saved = os.dup(2)
    with tempfile.TemporaryFile() as buffer:
        os.dup2(buffer.fileno(), 2)
        try:
            import tensorflow as tf

            tf.get_logger().setLevel(logging.ERROR)
        except BaseException:
            os.dup2(saved, 2)
            buffer.seek(0)
            sys.stderr.write(buffer.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _size(text):
    """'128x64' -> (128, 64) (height, width)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 128x64, got {text!r}") from None
    if height < 8 or width < 8:
        raise argparse.ArgumentTypeError(f"image size must be at least 8x8, got {text!r}")
    return height, width


def cmd_synth(args):
    from keras_reid.data import synthetic

    path = synthetic.generate(
        args.preset,
        args.out,
        seed=args.seed,
        ids=args.ids,
        size=args.size,
        overwrite=args.overwrite,
    )
    from keras_reid.data import load_dataset

    print(
        load_dataset(args.preset, path, seed=args.seed, ids=args.ids, size=args.size)
        .summary()
        .to_string(index=False)
    )
    print(f"wrote {path}")


def cmd_datasets(args):
    from keras_reid.data import DATASETS, load_dataset, parse_spec

    if not args.specs:
        for name in DATASETS.names():
            doc = (DATASETS.get(name).__doc__ or "").strip().splitlines()
            print(f"{name:12s} {doc[0] if doc else ''}")
        return
    import pandas as pd

    datasets = []
    for spec in args.specs:
        name, root = parse_spec(spec)
        datasets.append(load_dataset(name, root))
    print(pd.concat([d.summary() for d in datasets]).to_string(index=False))
    if args.check:
        from keras_reid.data.pipeline import find_unreadable

        for dataset in datasets:
            for split, table in dataset.splits().items():
                bad = find_unreadable(table)
                if bad:
                    from keras_reid.errors import ReIDError

                    raise ReIDError(
                        f"{dataset.name}/{split}: {len(bad)} unreadable image(s), e.g. "
                        f"{', '.join(bad[:3])}; delete or re-extract them."
                    )
        print("every image decodes")
    if args.sheet:
        from keras_reid.data.sheet import contact_sheet

        contact_sheet({d.name: d.train for d in datasets}, args.sheet)
        print(f"wrote {args.sheet}")


def cmd_demo(args):
    from keras_reid.demo import run_demo

    run_demo(out=args.out, quick=args.quick, seed=args.seed)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-reid",
        description="Person re-identification with Keras 3: data, training, evaluation, export.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("synth", help="generate a SynthReID domain in the Market-1501 layout")
    p.add_argument("--preset", required=True, help="synth-a, synth-b or synth-c")
    p.add_argument("--out", required=True, help="folder to create")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ids", type=int, default=None, help="identities (default: the preset's)")
    p.add_argument("--size", type=_size, default=(128, 64), help="HxW, default 128x64")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "datasets",
        help="list the dataset registry, or check datasets on disk",
        description="Without arguments: list the registered datasets. With NAME:ROOT "
        "arguments: load each and print ids, images and cameras per split.",
    )
    p.add_argument(
        "specs",
        nargs="*",
        metavar="NAME[:ROOT]",
        help="e.g. market1501:/data/Market-1501-v15.09.15 or synth-a",
    )
    p.add_argument("--sheet", metavar="FILE", help="write a contact sheet PNG of the train sets")
    p.add_argument("--check", action="store_true", help="decode every image, report bad ones")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("demo", help="run the main pipeline on SynthReID, no download needed")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _quiet_tensorflow()
    from keras_reid.errors import ReIDError

    try:
        args.func(args)
    except (ReIDError, FileNotFoundError, FileExistsError) as error:
        if args.debug:
            raise
        print(f"keras-reid {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"keras-reid {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
