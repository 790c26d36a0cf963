"""The command line's grammar: every subcommand, its arguments and its help."""

import argparse

from keras_reid.cli.commands import (
    cmd_attention,
    cmd_datasets,
    cmd_demo,
    cmd_embed,
    cmd_evaluate,
    cmd_export,
    cmd_index_build,
    cmd_search,
    cmd_synth,
    cmd_train,
)
from keras_reid.environment import PrintVersions


def _size(text):
    """'128x64' -> (128, 64) (height, width)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 128x64, got {text!r}") from None
    if height < 8 or width < 8:
        raise argparse.ArgumentTypeError(f"image size must be at least 8x8, got {text!r}")
    return height, width


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
