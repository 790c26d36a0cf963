"""The ``keras-reid`` command: one console script with subcommands.

Every subcommand calls library functions; no logic lives only here. Errors in
the user's input end the command with one line naming the problem and exit
status 2 (a traceback only with ``--debug``).
"""

import logging
import os
import sys

from keras_reid.cli.messages import (
    EXIT_USAGE,
    describe_error,
    filter_stderr,
    tensorflow_errors,
)
from keras_reid.cli.parser import build_parser


def main(argv=None):
    parser = build_parser()
    # Overrides may follow the options (``--out DIR model.alpha=0.5``), which
    # argparse cannot match to a positional after options: collect them here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "overrides", None) is None or any(
            e.startswith("-") or "=" not in e for e in extra
        ):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # TensorFlow's and faiss's INFO lines ("Using MirroredStrategy with devices ...", "Loading
    # faiss with AVX2 support.") are not the run's news, and would precede an error line.
    for name in ("tensorflow", "faiss"):
        logging.getLogger(name).setLevel(logging.WARNING)
    restore = (lambda silence=False: None) if args.debug else filter_stderr()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_reid.errors import ReIDError

    failed = False
    try:
        args.func(args)
    except (ReIDError, OSError, MemoryError) + tensorflow_errors() as error:
        if args.debug:
            raise
        failed = True
        print(f"keras-reid {args.command}: error: {describe_error(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as stop:  # Ctrl-C; a multi-worker run's SIGTERM too (its exit_code)
        failed = True
        print(f"keras-reid {args.command}: {str(stop) or 'interrupted'}", file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    finally:
        restore(silence=failed)
    return 0
