"""The subcommands: each reads its arguments and calls library functions.

Imports are inside each command, so that ``keras-reid --help`` and a usage
error answer without loading TensorFlow.
"""

import os


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


def cmd_index_build(args):
    from keras_reid.serving.gallery.search import build_index

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
    from keras_reid.serving.gallery.index import GalleryIndex
    from keras_reid.serving.gallery.search import search_images

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


def _index_params(args):
    """The index parameters given on the command line (None: not given)."""
    names = ("m", "ef_construction", "ef_search", "nlist", "nprobe")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
