"""The ``keras-reid`` command: one console script with subcommands.

Every subcommand calls library functions; no logic lives only here. Errors in
the user's input end the command with one line naming the problem and exit
status 2 (a traceback only with ``--debug``).
"""

import argparse
import errno
import logging
import os
import re
import sys
import threading

from keras_reid._quiet import NoiseFilter
from keras_reid.environment import PrintVersions

EXIT_USAGE = 2


def _filter_stderr():
    """Route fd 2 through a thread that drops TensorFlow's runtime chatter (see _quiet)."""
    read_end, write_end = os.pipe()
    real = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        pending, noise = b"", NoiseFilter()
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            pending += chunk
            # Split after \n or \r so progress bars (\r updates) pass through live.
            parts = re.split(rb"(?<=[\r\n])", pending)
            pending = parts.pop()
            kept = noise(b"".join(parts))
            if kept:
                os.write(real, kept)
        os.write(real, noise(pending))  # the last line, if it has no end

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the pump drains and stops
        # Wait for the pump to copy what is left (the error line above all): a
        # daemon thread is killed at exit with its data still in the pipe. A
        # child process that inherited the write end keeps the pipe open, so
        # the wait is bounded.
        thread.join(timeout=10)
        if not thread.is_alive():
            os.close(read_end)

    return restore


def _silence_fd2():
    """After a failed command's last line, send fd 2 to /dev/null until the process ends.

    tf.data's decoder threads can still be working through the batches queued
    before the error, and they write their complaints ("Premature end of JPEG
    data") straight to fd 2: after the filter is gone, they would land after
    the one-line error.
    """
    try:
        sys.stderr.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    except OSError:
        pass


def _tensorflow_errors():
    """TensorFlow's errors about files and resources: the user's to fix, not a bug of ours."""
    if "tensorflow" not in sys.modules:
        return ()
    from tensorflow import errors

    return (
        errors.NotFoundError,
        errors.PermissionDeniedError,
        errors.ResourceExhaustedError,
        errors.DataLossError,
        errors.AlreadyExistsError,
    )


_ADVICE = {
    errno.ENOSPC: "free some space or write elsewhere (another --out), then run again "
    "(training: with --resume)",
    errno.EDQUOT: "free some space or write elsewhere, then run again",
    errno.EROFS: "choose a writable folder",
    errno.EACCES: "choose a folder you may write to, or fix the permissions",
    errno.EPERM: "choose a folder you may write to, or fix the permissions",
    errno.ENOENT: "check the path",
    errno.EISDIR: "pass a file, not a folder",
    errno.ENOTDIR: "check the path: a part of it is a file",
    errno.ELOOP: "fix the symbolic link loop",
    errno.EIO: "check the disk",
}


def describe_error(error):
    """One line for an error: what happened, to which file, and what to do."""
    if isinstance(error, OSError) and error.errno in _ADVICE:
        where = f": {error.filename}" if error.filename else ""
        text = f"{error.strerror}{where}; {_ADVICE[error.errno]}."
    elif isinstance(error, MemoryError):
        text = "out of memory; use smaller batches or images, or a machine with more memory."
    elif type(error).__module__.startswith("tensorflow"):
        text = f"{type(error).__name__}: {error.message}"
    else:
        text = str(error) or type(error).__name__
    # One line, however long: never cut, never wrapped.
    return " ".join(text.split())


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
    from keras_reid.data import synthreid

    path = synthreid.generate(
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
    from keras_reid.data import DATASETS, label_apart, load_dataset, parse_spec

    if not args.specs:
        for name in DATASETS.names():
            doc = (DATASETS.get(name).__doc__ or "").strip().splitlines()
            print(f"{name:12s} {doc[0] if doc else ''}")
        return
    import pandas as pd

    specs = [parse_spec(spec) for spec in args.specs]
    datasets = label_apart(
        [load_dataset(name, root) for name, root in specs], [root for _, root in specs]
    )
    print(pd.concat([d.summary() for d in datasets]).to_string(index=False))
    if args.check:
        from keras_reid.data.images import find_unreadable, unreadable_error

        # Decoded with the pipeline's own decoder: every file listed here would
        # stop training or evaluation.
        bad, where, seen = [], [], set()
        for dataset in datasets:
            for split, table in dataset.splits().items():
                found = [p for p in find_unreadable(table, reasons=True) if p[0] not in seen]
                for path, reason in found:
                    print(f"unreadable: {path} ({reason})")
                seen.update(path for path, _ in found)
                if found:
                    where.append(f"{dataset.label}/{split}")
                bad += found
        if bad:
            raise unreadable_error(bad, where, fix="listed above")
        print("every image decodes")
    if args.sheet:
        from keras_reid.data.sheet import contact_sheet

        contact_sheet({d.label: d.train for d in datasets}, args.sheet)
        print(f"wrote {args.sheet}")


def cmd_demo(args):
    from keras_reid.demo import run_demo

    run_demo(out=args.out, quick=args.quick, seed=args.seed)


def cmd_train(args):
    import pandas as pd

    from keras_reid.config import load_config
    from keras_reid.training import RECIPES
    from keras_reid.training.distribute import finish_multi_worker, start_multi_worker

    recipe = RECIPES.get(args.recipe)
    overrides = list(args.overrides)
    # EmbAE's autoencoder stages are a few dense layers on cached features:
    # only its stage 1 (the embedding) is worth distributing or mixing precision.
    train = "embedding.train" if args.recipe == "embae" else "train"
    if args.distribute:
        overrides.append(f"{train}.distribute={args.distribute}")
    if args.mixed_precision:
        overrides.append(f"{train}.mixed_precision=true")
    config = load_config(args.config, overrides)
    # TensorFlow sets up a multi-worker run only before its first op: the
    # strategy comes before any data is read (TF_CONFIG is checked first).
    start_multi_worker(config, train)
    result = recipe(config, args.out, resume=args.resume)
    if isinstance(result, pd.DataFrame):  # a recipe's results table (EmbAE, PUL)
        from keras_reid.evaluation.reports import results_markdown

        print(results_markdown(result), flush=True)
    print(f"wrote {args.out}", flush=True)
    finish_multi_worker()  # every worker ends together: the chief hosts TensorFlow's coordination


def cmd_evaluate(args):
    from keras_reid.data import load_dataset, parse_spec
    from keras_reid.evaluation.evaluator import evaluate_model
    from keras_reid.evaluation.metrics import format_results
    from keras_reid.serving.model_io import load_keras_model

    model = load_keras_model(args.model)
    name, root = parse_spec(args.data)
    dataset = load_dataset(name, root)
    rerank = (
        {"k1": args.k1, "k2": args.k2, "lambda_value": args.lambda_value} if args.rerank else False
    )
    row = evaluate_model(
        model,
        dataset,
        tta=args.tta,
        rerank=rerank,
        batch_size=args.batch_size,
        metric=args.metric,
        normalize=not args.no_normalize,
        out=args.out,
        worst_first=not args.best_first,
    )
    print(format_results(row))
    if args.out:
        print(f"wrote {args.out}/results.csv, results.md, cmc.png, ranked_lists.png")


def cmd_embed(args):
    from keras_reid.serving.gallery.features import embed_split, read_meta

    path = embed_split(
        args.model,
        args.data,
        args.split,
        args.out,
        shard=args.shard,
        num_shards=args.num_shards,
        batch_size=args.batch_size,
        tta=args.tta,
        overwrite=args.overwrite,
    )
    meta = read_meta(path)
    print(
        f"wrote {path}: rows {meta['start']}..{meta['stop'] - 1} of the {meta['rows']} of "
        f"{meta['data']} {meta['split']} ({meta['dim']}-d embeddings)"
    )


def _index_params(args):
    """The index parameters given on the command line (None: not given)."""
    names = ("m", "ef_construction", "ef_search", "nlist", "nprobe")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def cmd_index_build(args):
    from keras_reid.serving.gallery.index import build_index

    index = build_index(
        args.features, args.out, kind=args.kind, overwrite=args.overwrite, **_index_params(args)
    )
    meta = index.meta
    params = ", ".join(f"{k}={v}" for k, v in meta["params"].items()) or "no parameters"
    print(
        f"wrote {args.out}: {meta['kind']} index of {meta['rows']} {meta['dim']}-d embeddings "
        f"({params}) from {meta['model']}, built in {meta['build_seconds']:.1f} s"
    )


def cmd_search(args):
    from keras_reid.serving.gallery.index import GalleryIndex, search_images

    index = GalleryIndex.load(args.index)
    index.set_params(**_index_params(args))
    tta = "index" if args.tta is None else (None if args.tta == "none" else args.tta)
    hits = search_images(index, args.model, args.images, top=args.top, tta=tta)
    columns = ["query_path", "rank", "score", "pid", "camid", "path"]
    columns += [c for c in ("dataset",) if c in hits.columns]
    if args.format == "csv":
        print(hits[columns].to_csv(index=False), end="")
    elif args.format == "json":
        print(hits[columns].to_json(orient="records", lines=True), end="")
    else:
        for query, group in hits.groupby("query", sort=True):
            print(f"query {query + 1}: {group['query_path'].iloc[0]}")
            shown = group[columns[1:]].copy()
            shown["score"] = shown["score"].map("{:.4f}".format)
            print(shown.to_string(index=False))


def cmd_attention(args):
    from keras_reid.evaluation.visualize import write_attention_maps

    written = write_attention_maps(args.model, args.images, args.out)
    print(f"wrote {len(written)} image(s) with their attention maps to {args.out}")


def cmd_export(args):
    import json

    from keras_reid.errors import ReIDError
    from keras_reid.serving.savedmodel import export_saved_model

    if args.format == "onnx":
        from keras_reid.serving.onnx import export_onnx, read_metadata

        if args.warmup is not None:
            raise ReIDError(
                "--warmup/--no-warmup are for --format savedmodel; ONNX has no warm-up file."
            )
        out = export_onnx(
            args.model,
            args.out,
            tta=args.tta,
            overwrite=args.overwrite,
            groups_file=args.groups,
            opset=args.opset,
        )
        print(f"wrote {out}")
        print(f"  {read_metadata(out)['graph']}")
        return
    if args.opset is not None:
        raise ReIDError("--opset is for --format onnx.")
    out = export_saved_model(
        args.model,
        args.out,
        tta=args.tta,
        overwrite=args.overwrite,
        groups_file=args.groups,
        warmup=args.warmup,
    )
    print(f"wrote {out}")
    with open(os.path.join(out, "assets.extra", "export.json"), encoding="utf-8") as stream:
        record = json.load(stream)
    for line in record["signatures"]:
        print(f"  {line}")
    if record["warmup_requests"]:
        count = record["warmup_requests"]
        print(f"  {count} warm-up requests in assets.extra/tf_serving_warmup_requests")
    elif record.get("warmup_skipped"):
        print(
            f"  no warm-up requests: {record['warmup_skipped']} (pip install --no-deps "
            "tensorflow-serving-api, then export again, to add them)"
        )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-reid",
        description="Person re-identification with Keras 3: data, training, evaluation, export.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--version",
        action=PrintVersions,
        help="print the versions of keras-reid and of the libraries behind its numbers, then exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("synth", help="generate a SynthReID domain in the Market-1501 layout")
    p.add_argument("--preset", required=True, help="synth-a, synth-b, synth-c or synth-d")
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

    p = sub.add_parser(
        "train",
        help="train a paper's model from a YAML config",
        description="Train RECIPE (embedding, embae, msml, sal) from a config; section.key=value "
        "arguments override the config. The run folder records the resolved config.",
    )
    p.add_argument("recipe", help="embedding, embae, msml, sal, dien or pul")
    p.add_argument("--config", required=True, help="a YAML config (train_scripts/configs/)")
    p.add_argument("--out", required=True, help="run folder (refused if not empty)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument(
        "--distribute",
        choices=["mirrored", "multi_worker"],
        help="mirrored: tf.distribute.MirroredStrategy over the local devices; multi_worker: "
        "MultiWorkerMirroredStrategy over the machines of TF_CONFIG (README)",
    )
    p.add_argument(
        "--mixed-precision",
        action="store_true",
        help="float16 compute on a GPU (bfloat16 on a CPU)",
    )
    p.add_argument("overrides", nargs="*", metavar="section.key=value")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="score a model on a dataset's query/gallery (Rank-k, mAP, mINP, -nd)",
        description="Extract features with MODEL (a .keras file with an 'embedding' output) "
        "and score them with the dataset's protocol (Market rule, CUHK03, or video).",
    )
    p.add_argument("model", help="a .keras model file")
    p.add_argument("--data", required=True, metavar="NAME[:ROOT]", help="e.g. market1501:/data/m")
    p.add_argument(
        "--tta",
        choices=["flip", "center-crop", "five-crop", "five-crop-flip"],
        help="test-time augmentation",
    )
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    p.add_argument("--k1", type=int, default=20)
    p.add_argument("--k2", type=int, default=6)
    p.add_argument("--lambda-value", type=float, default=0.3)
    p.add_argument("--metric", choices=["euclidean", "sqeuclidean", "cosine"], default="euclidean")
    p.add_argument("--no-normalize", action="store_true", help="keep embeddings unnormalised")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", help="write results.csv, results.md, cmc.png, ranked_lists.png here")
    p.add_argument("--best-first", action="store_true", help="ranked lists: best queries first")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "export",
        help="write a SavedModel for TF Serving into NAME/VERSION, or an ONNX file",
        description="Export MODEL (a .keras file with an 'embedding' output: an embedding "
        "model or EmbAE's inference.keras) as a SavedModel with the signatures "
        "serving_default (uint8 images at the model's size) and embed_encoded (JPEG/PNG "
        "bytes of any size) and TF Serving warm-up requests, or with --format onnx as one "
        "ONNX file computing serving_default. The output is written atomically.",
    )
    p.add_argument("model", help="a .keras model file")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR/NAME/VERSION | FILE.onnx",
        help="e.g. saved_models/emb/1, or saved_models/emb.onnx with --format onnx",
    )
    p.add_argument(
        "--format",
        choices=["savedmodel", "onnx"],
        default="savedmodel",
        help="savedmodel (default, for TF Serving) or onnx (tf2onnx, for onnxruntime)",
    )
    p.add_argument("--tta", choices=["flip"], help="average with the mirrored image in the graph")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version or file")
    p.add_argument(
        "--groups",
        metavar="FILE",
        help="groups.json of a multi-group EmbAE model (default: the one beside MODEL)",
    )
    p.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="SavedModel: write assets.extra/tf_serving_warmup_requests, built with "
        "tensorflow-serving-api (default: when it is installed; --warmup: required)",
    )
    p.add_argument("--opset", type=int, help="ONNX opset, 13-18 (default: tf2onnx's, 15)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "embed",
        help="embed a dataset split (or one shard of it) into a Parquet file",
        description="Embed the images of one split of a dataset with MODEL and write "
        "OUT/part-I-of-N.parquet: the table's rows (path, pid, camid, ...) with their "
        "L2-normalised embeddings. With --shard I --num-shards N each of N machines embeds "
        "one contiguous part; the parts read back in order equal the whole split embedded "
        "on one machine.",
    )
    p.add_argument("model", help="a .keras model file with an 'embedding' output")
    p.add_argument("--data", required=True, metavar="NAME[:ROOT]", help="e.g. market1501:/data/m")
    p.add_argument("--split", default="gallery", help="gallery (default), query or train")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the shards")
    p.add_argument("--shard", type=int, default=0, metavar="I", help="this shard, 0-based")
    p.add_argument("--num-shards", type=int, default=1, metavar="N", help="shards in all")
    p.add_argument(
        "--batch-size", type=int, default=128, help="images per pass (the same on every shard)"
    )
    p.add_argument("--tta", choices=["flip"], help="average with the mirrored image")
    p.add_argument("--overwrite", action="store_true", help="replace this shard's file")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser(
        "index",
        help="build a faiss gallery index from embed's Parquet features",
        description="index build FEATURES... --out INDEX: index the embeddings of keras-reid "
        "embed (files or folders of shards; several extractions of one model are joined in "
        "order) for keras-reid search. exact (default) is faiss's brute-force inner product "
        "on the L2-normalised embeddings (= cosine); hnsw and ivf are approximate.",
    )
    index_sub = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    p = index_sub.add_parser(
        "build",
        help="build an index folder from FEATURES",
        description="Write INDEX/faiss.index, rows.parquet (the gallery rows) and index.json "
        "(model fingerprint, dimension, kind, parameters, source files), atomically.",
    )
    p.add_argument("features", nargs="+", metavar="FEATURES", help=".parquet files or folders")
    p.add_argument("--out", required=True, metavar="INDEX", help="index folder to create")
    p.add_argument("--kind", choices=["exact", "hnsw", "ivf"], default="exact")
    p.add_argument("--m", type=int, help="hnsw: graph neighbours per node (default 32)")
    p.add_argument("--ef-construction", type=int, help="hnsw: build beam width (default 40)")
    p.add_argument("--ef-search", type=int, help="hnsw: search beam width (default 128)")
    p.add_argument("--nlist", type=int, help="ivf: k-means cells (default 4*sqrt(rows))")
    p.add_argument("--nprobe", type=int, help="ivf: cells searched per query (default 32)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing INDEX")
    p.set_defaults(func=cmd_index_build)

    p = sub.add_parser(
        "search",
        help="the nearest gallery images of query images, from an index",
        description="Embed IMAGES with MODEL (the model the index's features came from: "
        "checked by its weights' fingerprint) and print each one's TOP nearest gallery "
        "images: rank, score (cosine similarity), pid, camid, path.",
    )
    p.add_argument("index", metavar="INDEX", help="a folder written by keras-reid index build")
    p.add_argument("--model", required=True, help="the .keras model of the index's features")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="query image files, any size")
    p.add_argument("--top", type=int, default=10, help="hits per query (default 10)")
    p.add_argument(
        "--tta", choices=["none", "flip"], help="override the index's test-time augmentation"
    )
    p.add_argument("--ef-search", type=int, help="hnsw: search beam width")
    p.add_argument("--nprobe", type=int, help="ivf: cells searched per query")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "attention",
        help="draw a self-attention model's attention maps over images (PNG)",
        description="For each IMAGE, write DIR/<image name>.png: the image at MODEL's input "
        "size, then each level of MODEL's 'attention' output (SAL: stages 4, 5 and 6) "
        "upsampled, coloured (jet, red = high) and blended over it. Every image is read "
        "before anything is written.",
    )
    p.add_argument("model", help="a .keras model with an 'attention' output")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs")
    p.set_defaults(func=cmd_attention)

    p = sub.add_parser(
        "demo",
        help="EmbAE on SynthReID, synth-a -> synth-b: the paper's table, no download needed",
        description="Generate SynthReID, train the embedding on synth-a, pre-train the EmbAE "
        "autoencoders, fine-tune every variant on unlabelled synth-b and print the table "
        "(about 9 minutes on 2 CPU cores; --quick about 2). Re-running with the same --out "
        "reuses finished stages.",
    )
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="150 identities per domain and a 15-epoch stage 1 (about 2 min)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


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
    restore = (lambda: None) if args.debug else _filter_stderr()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_reid.errors import ReIDError

    failed = False
    try:
        args.func(args)
    except (ReIDError, OSError, MemoryError) + _tensorflow_errors() as error:
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
        restore()
        if failed and not args.debug:
            _silence_fd2()
    return 0


if __name__ == "__main__":
    sys.exit(main())
