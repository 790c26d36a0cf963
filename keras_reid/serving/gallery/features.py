"""Embeddings of a dataset split as Parquet shards: ``keras-reid embed``.

A gallery of millions of crops is embedded by several machines at once, each
taking one shard: ``embed_split(..., shard=I, num_shards=N)`` writes
``OUT/part-0000I-of-0000N.parquet``. A shard is a contiguous range of the
split's table, cut at multiples of the batch size, so every machine runs the
very batches a single machine would: the shards, read back in order by
:func:`read_features`, equal the single-machine result bit for bit.

One Parquet file holds the table's columns (``path``, ``pid``, ``camid``,
``dataset``, ...), ``row`` (the image's row in the whole split) and
``embedding`` (a fixed-size list of float32, L2-normalised as the exported
model serves it). The schema metadata key ``keras_reid`` holds a JSON record
of the extraction: the model and its weights' fingerprint, the data, split,
shard, batch size and test-time augmentation. pyarrow, pandas and Spark read
the files as they are.

Example:
    >>> embed_split("runs/emb/model.keras", "market1501:/data/market", "gallery",
    ...             "features/market_gallery", shard=0, num_shards=4)
    >>> gallery = read_features(["features/market_gallery"])
    >>> gallery.embeddings.shape, gallery.table.pid[:3].tolist()
"""

import glob
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from keras_reid.checks import is_int
from keras_reid.errors import ReIDError, check_one_of

META_KEY = b"keras_reid"
FORMAT_VERSION = 1
SPLITS = ("train", "query", "gallery")
# What every shard of one extraction must agree on.
EXTRACTION_KEYS = (
    "model_sha256",
    "dim",
    "data",
    "split",
    "rows",
    "table_sha256",
    "num_shards",
    "batch_size",
    "tta",
)
# What every extraction in one feature set (an index) must agree on, besides the model.
COMPARABLE_KEYS = ("dim", "normalized", "tta")


@dataclass(frozen=True)
class FeatureSet:
    """Embeddings with their table rows, read from one or more extractions.

    Attributes:
        table: the images' rows (path, pid, camid, dataset, ...), in the
            order of the split's table (extraction after extraction).
        embeddings: float32 ``[N, D]``, row ``i`` is ``table``'s row ``i``.
        meta: the extraction's record (see :func:`embed_split`); ``rows`` is
            the total and ``extractions`` lists each (data, split, rows).
    """

    table: pd.DataFrame
    embeddings: np.ndarray
    meta: dict


def model_fingerprint(model):
    """The hex SHA-256 of a Keras model's weights (shapes, dtypes and bytes, in order).

    Two models give the same fingerprint exactly when they compute the same
    function with the same architecture's weights; it tells whether features
    and a query come from one model.
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        values = np.ascontiguousarray(np.asarray(weight.numpy()))
        digest.update(f"{values.dtype.str}{values.shape};".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def table_fingerprint(table):
    """The hex SHA-256 of a split's rows: paths (relative to their common folder), pids, camids.

    Machines that mount the dataset at different paths agree; machines whose
    copies list other images (a missing folder, a partial copy) do not.
    """
    paths = table["path"].astype(str).tolist()
    base = os.path.commonpath([os.path.dirname(path) for path in paths]) if paths else ""
    digest = hashlib.sha256()
    for path, pid, camid in zip(paths, table["pid"], table["camid"], strict=True):
        digest.update(f"{os.path.relpath(path, base)}\t{pid}\t{camid}\n".encode())
    return digest.hexdigest()


def shard_rows(rows, batch_size, shard, num_shards):
    """The rows ``[start, stop)`` of shard ``shard`` of ``num_shards``.

    Shards are cut between batches (``start`` is a multiple of ``batch_size``)
    so that a shard's batches are the single-machine run's batches.
    """
    batches = -(-rows // batch_size)
    start = shard * batches // num_shards * batch_size
    stop = min((shard + 1) * batches // num_shards * batch_size, rows)
    return start, max(start, stop)


def _positive_int(value, name, minimum=1):
    if not is_int(value, minimum=minimum, numpy=True):
        raise ReIDError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def shard_path(out, shard, num_shards):
    """``OUT/part-0000I-of-0000N.parquet``."""
    return os.path.join(out, f"part-{shard:05d}-of-{num_shards:05d}.parquet")


def embed_split(
    model, data, split, out, shard=0, num_shards=1, batch_size=128, tta=None, overwrite=False
):
    """Embed shard ``shard`` of ``num_shards`` of a dataset split into a Parquet file.

    Args:
        model: the path of a keras_reid ``.keras`` model with an "embedding" output.
        data: ``NAME[:ROOT]`` (see ``keras-reid datasets``).
        split: "gallery" (default on the command line), "query" or "train".
        out: the folder of the extraction's shards.
        shard, num_shards: this machine's shard, 0-based, of how many.
            Default 0 of 1 (the whole split).
        batch_size: images per forward pass; every shard must use the same. Default 128.
        tta: None or "flip", as the served model. Default None.
        overwrite: replace this shard's file if it exists. Default False.

    Returns:
        the path of the written file.
    """
    from keras_reid import __version__
    from keras_reid.data import load_dataset, parse_spec
    from keras_reid.serving.extractor import FeatureExtractor
    from keras_reid.serving.model_io import load_model

    num_shards = _positive_int(num_shards, "num_shards")
    shard = _positive_int(shard, "shard", minimum=0)
    if shard >= num_shards:
        raise ReIDError(
            f"shard {shard} does not exist in {num_shards} shard(s); shards are numbered "
            f"0..{num_shards - 1}."
        )
    batch_size = _positive_int(batch_size, "batch_size")
    check_one_of("split", split, SPLITS)
    path = shard_path(os.path.abspath(os.path.expanduser(os.fspath(out))), shard, num_shards)
    if os.path.exists(path) and not overwrite:
        raise ReIDError(f"{path} exists; pass --overwrite (overwrite=True) to embed it again.")
    source = os.path.abspath(os.path.expanduser(os.fspath(model)))
    model = load_model(source)
    extractor = FeatureExtractor(model, batch_size=batch_size, tta=tta)
    name, root = parse_spec(data)
    table = load_dataset(name, root).splits()[split]
    start, stop = shard_rows(len(table), batch_size, shard, num_shards)
    part = table.iloc[start:stop].reset_index(drop=True)
    dim = extractor.spec.dims["embedding"]
    if len(part):
        embeddings = extractor.embed(part)
    else:  # more shards than batches: an empty shard still says "no rows here"
        embeddings = np.zeros((0, dim), np.float32)
    meta = {
        "format": FORMAT_VERSION,
        "model": source,
        "model_name": model.name,
        "model_sha256": model_fingerprint(model),
        "dim": dim,
        "normalized": True,
        "tta": tta,
        "image_size": list(extractor.image_size),
        "data": name,
        "root": root,
        "split": split,
        "rows": len(table),
        "table_sha256": table_fingerprint(table),
        "shard": shard,
        "num_shards": num_shards,
        "start": start,
        "stop": stop,
        "batch_size": batch_size,
        "keras_reid": __version__,
    }
    write_features(path, part, embeddings, meta)
    return path


def write_features(path, table, embeddings, meta):
    """Write one shard atomically: ``table``'s columns, ``row`` and ``embedding``, and ``meta``.

    ``meta["start"]`` (default 0) numbers the rows; the file appears complete
    or not at all (a temporary beside it is renamed into place).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from keras_reid.fileio import atomic_output

    embeddings = np.ascontiguousarray(embeddings, np.float32)
    if embeddings.ndim != 2 or len(embeddings) != len(table):
        raise ReIDError(
            f"expected one embedding row per table row: {len(table)} rows, embeddings of "
            f"shape {embeddings.shape}."
        )
    start = int(meta.get("start", 0))
    columns = table.reset_index(drop=True).copy()
    columns["row"] = np.arange(start, start + len(table), dtype=np.int64)
    arrow = pa.Table.from_pandas(columns, preserve_index=False)
    values = pa.array(embeddings.reshape(-1), type=pa.float32())
    arrow = arrow.append_column(
        "embedding", pa.FixedSizeListArray.from_arrays(values, embeddings.shape[1])
    )
    metadata = dict(arrow.schema.metadata or {})
    metadata[META_KEY] = json.dumps(meta).encode()
    arrow = arrow.replace_schema_metadata(metadata)
    with atomic_output(path, suffix=".parquet") as temporary:
        pq.write_table(arrow, temporary)
    return path


def _files(paths):
    """The Parquet files named by ``paths`` (files, or folders of shards), in order, once."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = []
    for path in map(os.fspath, paths):
        path = os.path.abspath(os.path.expanduser(path))
        if os.path.isdir(path):
            found = sorted(glob.glob(os.path.join(path, "*.parquet")))  # hidden temporaries skipped
            if not found:
                raise ReIDError(
                    f"{path} holds no .parquet file; pass the --out folder of keras-reid embed."
                )
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ReIDError(f"no features file or folder at {path}; check the path.")
    if not files:
        raise ReIDError("no features given; pass the --out folder(s) of keras-reid embed.")
    seen = {}
    for path in files:
        real = os.path.realpath(path)
        if real in seen:
            raise ReIDError(f"{path} is given twice (also as {seen[real]}); pass each shard once.")
        seen[real] = path
    return files


def _read_parquet(path, schema_only=False, fix="embed that shard again"):
    """pyarrow's table (or only its schema) of ``path``; a one-line ReIDError if unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path) if schema_only else pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise ReIDError(
            f"{path} is not a readable Parquet file ({' '.join(str(error).split())}); {fix}."
        ) from None


def _record(path, schema):
    """The extraction record in a features file's schema, checked to be one of ours."""
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None or "embedding" not in schema.names or "row" not in schema.names:
        raise ReIDError(
            f"{path} is not a keras-reid features file (no keras_reid record, 'row' or "
            "'embedding' column); write features with keras-reid embed."
        )
    return json.loads(raw)


def read_meta(path):
    """The extraction record of one features file, without reading its rows."""
    return _record(path, _read_parquet(path, schema_only=True))


def _read_one(path):
    arrow = _read_parquet(path)
    meta = _record(path, arrow.schema)
    column = arrow.column("embedding").combine_chunks()
    embeddings = np.asarray(column.flatten(), np.float32).reshape(len(arrow), meta["dim"])
    table = arrow.drop_columns(["embedding"]).to_pandas()
    if not np.array_equal(table["row"].to_numpy(), np.arange(meta["start"], meta["stop"])):
        raise ReIDError(
            f"{path} should hold rows {meta['start']}..{meta['stop'] - 1} in order but holds "
            "others; it was changed after keras-reid embed wrote it: embed that shard again."
        )
    return table, embeddings, meta


def _describe(meta):
    return f"{meta['data']} {meta['split']}"


def _check_one_model(parts):
    """Every file ``[(path, table, embeddings, meta)]`` from one model; else name the odd ones.

    The model of most files (of the first file, on a tie) is the one meant. A
    shard of another model must not be taken for a missing shard.
    """
    by_model = {}
    for part in parts:
        by_model.setdefault(part[3]["model_sha256"], []).append(part)
    if len(by_model) == 1:
        return
    main = max(by_model.values(), key=len)

    def model(meta):
        return f"{meta['model']} (sha256 {meta['model_sha256'][:12]})"

    def files(group):
        named = [
            f"{path} ({_describe(meta)}, shard {meta['shard']} of {meta['num_shards']})"
            for path, *_, meta in group[:3]
        ]
        return ", ".join(named) + (", ..." if len(group) > 3 else "")

    odd = [group for group in by_model.values() if group is not main]
    embedded = " and ".join(
        f"{files(group)} {'was' if len(group) == 1 else 'were'} embedded with {model(group[0][3])}"
        for group in odd
    )
    raise ReIDError(
        f"features of different models: {embedded}, but the other {len(main)} file(s) with "
        f"{model(main[0][3])}; embed {'it' if len(parts) - len(main) == 1 else 'them'} again "
        f"with {main[0][3]['model']} (--overwrite), or pass only the files of one model."
    )


def _check_extraction(shards):
    """Shards ``[(path, table, embeddings, meta)]`` of one extraction: all there, none twice."""
    first_path, *_, first = shards[0]
    for path, _, _, meta in shards[1:]:
        if meta["rows"] != first["rows"] or meta["table_sha256"] != first["table_sha256"]:
            raise ReIDError(
                f"{path} and {first_path} were embedded from different lists of "
                f"{_describe(meta)} images ({meta['rows']} rows under {meta['root']} vs "
                f"{first['rows']} under {first['root']}); every machine needs the same copy "
                "of the dataset."
            )
        for key in EXTRACTION_KEYS:
            if meta[key] != first[key]:
                raise ReIDError(
                    f"{path} and {first_path} are shards of different extractions "
                    f"({key} {meta[key]!r} vs {first[key]!r}); every machine must embed the "
                    "same model, data and split with the same --num-shards, --batch-size and "
                    "--tta."
                )
    by_shard = {}
    for path, _, _, meta in shards:
        if meta["shard"] in by_shard:
            raise ReIDError(
                f"{path} and {by_shard[meta['shard']]} both hold shard {meta['shard']} of "
                f"{meta['num_shards']} (rows {meta['start']}..{meta['stop'] - 1}) of "
                f"{_describe(meta)}; pass each shard once."
            )
        by_shard[meta["shard"]] = path
    missing = sorted(set(range(first["num_shards"])) - set(by_shard))
    if missing:
        cuts = [
            shard_rows(first["rows"], first["batch_size"], i, first["num_shards"]) for i in missing
        ]
        ranges = [f"{start}..{stop - 1}" for start, stop in cuts[:3]]
        raise ReIDError(
            f"{_describe(first)}: shard(s) {', '.join(map(str, missing))} of "
            f"{first['num_shards']} are missing (rows {', '.join(ranges)}"
            f"{', ...' if len(missing) > 3 else ''}); embed them with --shard I --num-shards "
            f"{first['num_shards']} and pass every shard."
        )
    shards = sorted(shards, key=lambda item: item[3]["shard"])
    return shards


def read_features(paths):
    """Read the shards of one or more extractions as one :class:`FeatureSet`.

    Args:
        paths: Parquet files or folders of them (``keras-reid embed --out``).

    Every file must come from one model: files of another are errors naming
    them and both models' fingerprints. Every extraction (a data set and
    split) must be whole: a missing shard, a shard given twice, or shards cut
    by different ``--num-shards`` are errors naming the files. Several
    extractions (e.g. the galleries of two datasets) must have the same
    test-time augmentation; their rows follow in the order given.

    Example:
        >>> gallery = read_features(["features/part-00000-of-00002.parquet",
        ...                          "features/part-00001-of-00002.parquet"])
    """
    parts = [(path, *_read_one(path)) for path in _files(paths)]
    _check_one_model(parts)
    groups = {}
    for part in parts:
        groups.setdefault((part[3]["data"], part[3]["split"]), []).append(part)
    extractions = [_check_extraction(shards) for shards in groups.values()]
    first_path, *_, first = extractions[0][0]
    for shards in extractions[1:]:
        path, *_, meta = shards[0]
        for key in COMPARABLE_KEYS:
            if meta[key] != first[key]:
                raise ReIDError(
                    f"{path} and {first_path} hold features of different {key} ({meta[key]!r} "
                    f"vs {first[key]!r}); embed every split with one model and the same --tta."
                )
    parts = [item for shards in extractions for item in shards]
    table = pd.concat([item[1] for item in parts], ignore_index=True).drop(columns="row")
    embeddings = np.concatenate([item[2] for item in parts])
    meta = {k: v for k, v in first.items() if k not in ("shard", "start", "stop")}
    meta["rows"] = len(table)
    meta["extractions"] = [
        {"data": shards[0][3]["data"], "split": shards[0][3]["split"], "rows": shards[0][3]["rows"]}
        for shards in extractions
    ]
    meta["files"] = [item[0] for item in parts]
    return FeatureSet(table, embeddings, meta)
