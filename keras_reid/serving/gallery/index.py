"""A gallery index on faiss: the nearest gallery images of query embeddings.

``keras-reid index build FEATURES... --out INDEX`` builds one from the Parquet
features of ``keras-reid embed``; ``keras-reid search INDEX --model MODEL
IMAGES...`` embeds query images with the same model and lists their nearest
gallery images, each named by the table row it came from (path, pid, camid,
dataset).

Embeddings are L2-normalised, so the inner product is the cosine similarity
and ranks the gallery as ``evaluate(..., metric="cosine")`` (or euclidean on
normalised features) does. Three kinds of index:

* ``exact``: ``faiss.IndexFlatIP``, brute force, the reference. One BLAS
  matrix product per batch of queries: at Market-1501 scale, or for a few
  queries against a million images, it is fast enough.
* ``hnsw``: ``faiss.IndexHNSWFlat`` (Malkov & Yashunin, TPAMI 2018), a graph;
  no training, the best speed for a given recall, but a slow build and about
  ``m * 8`` extra bytes per image.
* ``ivf``: ``faiss.IndexIVFFlat`` (an inverted file over k-means cells), a
  quick build (k-means on a sample) and little extra memory; recall depends
  on how clustered the embeddings are.

An index folder holds ``faiss.index`` (``faiss.write_index``), ``rows.parquet``
(the gallery's table rows, in the index's order) and ``index.json`` (the
model's fingerprint, dimension, kind, parameters, rows, source files and the
SHA-256 of ``faiss.index``, checked at load: another index's file of the same
size would search silently).

Example:
    >>> from keras_reid.serving.gallery import GalleryIndex, read_features
    >>> index = GalleryIndex.build(read_features(["features/gallery"]), kind="hnsw")
    >>> index.save("indexes/market")
    >>> hits = GalleryIndex.load("indexes/market").search(query_embeddings, top=10)
"""

import json
import os
import time

import numpy as np
import pandas as pd

from keras_reid.checks import is_int
from keras_reid.errors import ReIDError, check_one_of
from keras_reid.fileio import (
    file_sha256,
    install_folder,
    remove_stale_temporaries,
    temporary_folder,
)
from keras_reid.serving.gallery.features import _read_parquet

KINDS = ("exact", "hnsw", "ivf")


# Defaults: the "build" parameters are fixed in the index; the "search" ones
# (ef_search, nprobe) can be changed after loading (GalleryIndex.set_params).
DEFAULT_PARAMS = {
    "exact": {},
    "hnsw": {"m": 32, "ef_construction": 40, "ef_search": 128},
    # nlist None: about 4 * sqrt(rows), the usual rule. train_size None: k-means
    # on 64 images per cell (faiss wants 39 to 256), or every image if fewer.
    "ivf": {"nlist": None, "nprobe": 32, "train_size": None, "seed": 0},
}


SEARCH_PARAMS = {"hnsw": ("ef_search",), "ivf": ("nprobe",)}


INDEX_FILE = "faiss.index"


ROWS_FILE = "rows.parquet"


META_FILE = "index.json"


FORMAT_VERSION = 1


# Rows further than this from unit norm are not L2-normalised embeddings.
NORM_TOLERANCE = 1e-3


# The columns a hit shows first; the table's other columns follow.
HIT_COLUMNS = ("query", "rank", "score", "pid", "camid", "path", "dataset")


# Query rows searched at a time by distances(): 256 x the gallery's int64 ids.
_CHUNK_ROWS = 256


# Distances in one block of evaluate_with_index (float32: 256 MB).
BLOCK_DISTANCES = 2**26


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ReIDError(
            "the gallery index needs faiss, which is not installed: pip install faiss-cpu"
        ) from None
    return faiss


def _check_unit_norm(embeddings, what, fix):
    norms = np.linalg.norm(embeddings, axis=1)
    bad = np.flatnonzero(np.abs(norms - 1) > NORM_TOLERANCE)
    if bad.size:
        raise ReIDError(
            f"{what}: {bad.size} of {len(norms)} embeddings are not L2-normalised (row "
            f"{bad[0]} has norm {norms[bad[0]]:.4g}); {fix}."
        )


def _as_embeddings(embeddings, name, dim=None):
    embeddings = np.asarray(embeddings)
    if embeddings.ndim == 1:
        embeddings = embeddings[None]
    if embeddings.ndim != 2 or not len(embeddings):
        raise ReIDError(f"{name} must be a non-empty [N, D] array; got shape {embeddings.shape}.")
    if dim is not None and embeddings.shape[1] != dim:
        raise ReIDError(
            f"{name} have dimension {embeddings.shape[1]} but the index holds {dim}-dimensional "
            "embeddings; embed the queries with the index's model."
        )
    embeddings = np.ascontiguousarray(embeddings, np.float32)
    if not np.isfinite(embeddings).all():
        raise ReIDError(f"{name} hold NaN or inf values.")
    return embeddings


def _merge(feature_sets):
    """One (table, embeddings, meta) from FeatureSets of one model, dimension and TTA."""
    first = feature_sets[0].meta
    for features in feature_sets[1:]:
        meta = features.meta
        if meta.get("dim") != first.get("dim"):
            raise ReIDError(
                f"features of {meta.get('model')} have dimension {meta.get('dim')} but those of "
                f"{first.get('model')} have {first.get('dim')}; build an index from the "
                "features of one model."
            )
        for key in ("model_sha256", "tta"):
            if meta.get(key) != first.get(key):
                what = "model" if key == "model_sha256" else "test-time augmentation"
                raise ReIDError(
                    f"features of different {what}s: {meta.get('model')} (tta "
                    f"{meta.get('tta')}, sha256 {str(meta.get('model_sha256'))[:12]}) vs "
                    f"{first.get('model')} (tta {first.get('tta')}, sha256 "
                    f"{str(first.get('model_sha256'))[:12]}); build an index from the features "
                    "of one model and one --tta."
                )
    if len(feature_sets) == 1:
        return feature_sets[0].table, feature_sets[0].embeddings, dict(first)
    table = pd.concat([f.table for f in feature_sets], ignore_index=True)
    embeddings = np.concatenate([f.embeddings for f in feature_sets])
    meta = dict(first)
    meta["rows"] = len(table)
    meta["extractions"] = [e for f in feature_sets for e in f.meta.get("extractions", [f.meta])]
    meta["files"] = [p for f in feature_sets for p in f.meta.get("files", [])]
    return table, embeddings, meta


def _ivf_params(params, rows):
    nlist = params["nlist"]
    if nlist is None:
        nlist = max(1, min(int(round(4 * np.sqrt(rows))), rows // 39))
    if nlist > rows:
        raise ReIDError(
            f"nlist {nlist} is larger than the gallery ({rows} rows); use nlist <= {rows} "
            "(or the exact index for a small gallery)."
        )
    train_size = params["train_size"]
    if train_size is None:
        train_size = min(rows, 64 * nlist)
    return {**params, "nlist": int(nlist), "train_size": int(train_size)}


class GalleryIndex:
    """Gallery embeddings in a faiss index, with the table rows they came from.

    Build one with :meth:`build`, write it with :meth:`save`, read it with
    :meth:`load`, query it with :meth:`search` (embeddings) or
    :func:`search_images` (image files and a model).

    Attributes:
        index: the faiss index (inner product).
        table: the gallery's table rows (path, pid, camid, dataset, ...), row
            ``i`` for faiss id ``i``.
        meta: the record written to ``index.json``: kind, params, dim, rows,
            the model's path, name and fingerprint, tta, sources.
    """

    def __init__(self, index, table, meta):
        if index.ntotal != len(table):
            raise ReIDError(
                f"the faiss index holds {index.ntotal} vectors but the table {len(table)} rows."
            )
        self.index = index
        self.table = table.reset_index(drop=True)
        self.meta = meta

    @property
    def kind(self):
        return self.meta["kind"]

    @property
    def dim(self):
        return self.meta["dim"]

    def __len__(self):
        return len(self.table)

    def __repr__(self):
        return (
            f"GalleryIndex(kind={self.kind!r}, rows={len(self)}, dim={self.dim}, "
            f"model={self.meta.get('model_name')!r}, params={self.meta['params']})"
        )

    @classmethod
    def build(cls, features, table=None, meta=None, kind="exact", **params):
        """An index of ``features``.

        Args:
            features: a :class:`~keras_reid.serving.gallery.FeatureSet` (from
                :func:`~keras_reid.serving.gallery.read_features`), a list of them (one
                model, dimension and tta), or a float32 array ``[N, D]`` of
                L2-normalised embeddings with ``table``.
            table: the rows of an array's embeddings (path, pid, camid, ...).
            meta: for an array, its record (``model``, ``model_sha256``,
                ``model_name``, ``tta``, ...); default: an unknown model.
            kind: "exact" (default, ``IndexFlatIP``), "hnsw" or "ivf".
            **params: hnsw: ``m`` (32), ``ef_construction`` (40), ``ef_search``
                (128); ivf: ``nlist`` (4 * sqrt(N)), ``nprobe`` (32),
                ``train_size`` (64 per cell: 64 * nlist), ``seed`` (0).

        Raises:
            ReIDError: features of different models or dimensions, embeddings
                that are not L2-normalised (they would rank differently from
                the cosine; normalise them when embedding), unknown params.

        Example:
            >>> index = GalleryIndex.build(read_features(["features/gallery"]), kind="ivf",
            ...                            nlist=4096, nprobe=64)
        """
        check_one_of("index kind", kind, KINDS)
        unknown = sorted(set(params) - set(DEFAULT_PARAMS[kind]))
        if unknown:
            raise ReIDError(
                f"unknown parameter(s) {', '.join(unknown)} for a {kind} index; expected: "
                f"{', '.join(DEFAULT_PARAMS[kind]) or 'none'}."
            )
        params = {**DEFAULT_PARAMS[kind], **params}
        if isinstance(features, np.ndarray):
            if table is None:
                raise ReIDError("pass the table of the embeddings' rows (table=...).")
            embeddings = _as_embeddings(features, "gallery embeddings")
            if len(table) != len(embeddings):
                raise ReIDError(
                    f"{len(embeddings)} embeddings but {len(table)} table rows; pass one row "
                    "per embedding."
                )
            meta = {"normalized": True, "tta": None, **(meta or {}), "dim": embeddings.shape[1]}
        else:
            if table is not None or meta is not None:
                raise ReIDError("table= and meta= go with an array; a FeatureSet carries both.")
            sets = list(features) if isinstance(features, (list, tuple)) else [features]
            if not sets:
                raise ReIDError("nothing to index: no feature set given.")
            table, embeddings, meta = _merge(sets)
            embeddings = _as_embeddings(embeddings, "gallery embeddings")
        source = meta.get("model") or "the given embeddings"
        if meta.get("normalized") is False:
            raise ReIDError(
                f"the features of {source} are not L2-normalised; an inner-product index "
                "ranks them unlike the cosine: embed them again without --no-normalize."
            )
        _check_unit_norm(
            embeddings,
            f"gallery features of {source}",
            "normalise them (keras_reid.evaluation.metrics.l2_normalize) before indexing",
        )
        for column in ("path", "pid", "camid"):
            if column not in table.columns:
                raise ReIDError(
                    f"the gallery table has no {column!r} column; expected the dataset table "
                    "contract (path, pid, camid, dataset)."
                )
        faiss = _faiss()
        dim = embeddings.shape[1]
        start = time.perf_counter()
        if kind == "exact":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, int(params["m"]), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(params["ef_construction"])
        else:
            params = _ivf_params(params, len(embeddings))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], faiss.METRIC_INNER_PRODUCT)
            sample = embeddings
            if len(embeddings) > params["train_size"]:
                rng = np.random.default_rng(params["seed"])
                chosen = np.sort(rng.choice(len(embeddings), params["train_size"], replace=False))
                sample = embeddings[chosen]
            index.cp.seed = int(params["seed"])
            index.train(sample)
        index.add(embeddings)
        record = {
            "format": FORMAT_VERSION,
            "kind": kind,
            "params": params,
            "metric": "inner_product",
            "dim": dim,
            "rows": len(embeddings),
            "model": meta.get("model"),
            "model_name": meta.get("model_name"),
            "model_sha256": meta.get("model_sha256"),
            "tta": meta.get("tta"),
            "image_size": meta.get("image_size"),
            "normalized": True,
            "extractions": meta.get("extractions", []),
            "files": meta.get("files", []),
            "build_seconds": round(time.perf_counter() - start, 3),
            "faiss": faiss.__version__,
        }
        result = cls(index, table, record)
        result.set_params(**{k: params[k] for k in SEARCH_PARAMS.get(kind, ())})
        return result

    def set_params(self, **params):
        """Change the search-time parameters: ``ef_search`` (hnsw) or ``nprobe`` (ivf)."""
        allowed = SEARCH_PARAMS.get(self.kind, ())
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ReIDError(
                f"unknown search parameter(s) {', '.join(unknown)} for a {self.kind} index; "
                f"expected: {', '.join(allowed) or 'none'}."
            )
        for name, value in params.items():
            if not is_int(value, minimum=1, numpy=True):
                raise ReIDError(f"{name} must be a positive integer. Received: {name}={value!r}")
            if name == "ef_search":
                self.index.hnsw.efSearch = int(value)
            else:
                self.index.nprobe = int(value)
            self.meta["params"][name] = int(value)
        return self

    def save(self, folder, overwrite=False):
        """Write the index folder atomically; a non-empty ``folder`` needs ``overwrite``.

        Returns:
            the absolute path of the folder.
        """
        folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
        if os.path.isfile(folder):
            raise ReIDError(f"{folder} is a file; pass a folder for the index (--out).")
        if os.path.isdir(folder) and os.listdir(folder) and not overwrite:
            raise ReIDError(
                f"{folder} exists and is not empty; choose another --out or pass --overwrite."
            )
        remove_stale_temporaries(os.path.dirname(folder), os.path.basename(folder), False)
        temporary = temporary_folder(folder)
        try:
            _faiss().write_index(self.index, os.path.join(temporary, INDEX_FILE))
            self.meta["faiss_sha256"] = file_sha256(os.path.join(temporary, INDEX_FILE))
            self.table.to_parquet(os.path.join(temporary, ROWS_FILE), index=False)
            with open(os.path.join(temporary, META_FILE), "w", encoding="utf-8") as stream:
                json.dump(self.meta, stream, indent=2)
                stream.write("\n")
            install_folder(temporary, folder, replace=overwrite)
        except BaseException:
            import shutil

            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder):
        """Read an index folder written by :meth:`save` (``keras-reid index build``)."""
        folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
        missing = [
            name
            for name in (META_FILE, INDEX_FILE, ROWS_FILE)
            if not os.path.isfile(os.path.join(folder, name))
        ]
        if missing:
            raise ReIDError(
                f"{folder} is not a gallery index (no {', '.join(missing)}); pass the --out "
                "folder of keras-reid index build."
            )
        with open(os.path.join(folder, META_FILE), encoding="utf-8") as stream:
            try:
                meta = json.load(stream)
            except json.JSONDecodeError as error:
                raise ReIDError(f"{folder}/{META_FILE} is not valid JSON ({error}).") from None
        if meta.get("format") != FORMAT_VERSION:
            raise ReIDError(
                f"{folder} is an index of format {meta.get('format')!r}; this keras-reid reads "
                f"format {FORMAT_VERSION}: build it again."
            )
        faiss, path = _faiss(), os.path.join(folder, INDEX_FILE)
        try:
            index = faiss.read_index(path)
        except RuntimeError as error:
            reason = " ".join(str(error).split())[:200]
            raise ReIDError(
                f"{path} is not a readable faiss index ({reason}); build it again."
            ) from None
        # Indexes written before the checksum was recorded have none to check.
        if meta.get("faiss_sha256") not in (None, file_sha256(path)):
            raise ReIDError(
                f"{path} is not the file keras-reid index build wrote there (its SHA-256 "
                f"differs from the one in {META_FILE}); build the index again."
            )
        rows = os.path.join(folder, ROWS_FILE)
        table = _read_parquet(rows, fix="build the index again").to_pandas()
        if index.ntotal != len(table) or index.d != meta["dim"]:
            raise ReIDError(
                f"{folder} is inconsistent: {index.ntotal} vectors of dimension {index.d}, "
                f"{len(table)} rows, index.json says dimension {meta['dim']}; build it again."
            )
        result = cls(index, table, meta)
        result.set_params(**{k: meta["params"][k] for k in SEARCH_PARAMS.get(meta["kind"], ())})
        return result

    def _search(self, embeddings, top):
        if not is_int(top, minimum=1, numpy=True):
            raise ReIDError(f"top must be a positive integer. Received: top={top!r}")
        embeddings = _as_embeddings(embeddings, "query embeddings", self.dim)
        # Normalising a query does not change its ranking; it makes the score a cosine.
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ReIDError("a query embedding is all zeros; its direction is undefined.")
        top = int(min(top, len(self)))
        scores, ids = self.index.search(embeddings / norms, top)
        return scores, ids

    def search(self, embeddings, top=10):
        """The ``top`` nearest gallery rows of every query embedding, as one DataFrame.

        Args:
            embeddings: ``[Q, D]`` (or ``[D]``) query embeddings from the
                index's model; they are L2-normalised here (it does not change
                the ranking).
            top: hits per query (default 10; at most the gallery's size).

        Returns:
            a DataFrame with one row per hit: ``query`` (0-based), ``rank``
            (1-based), ``score`` (cosine similarity, larger is closer), then
            the gallery row's columns (pid, camid, path, dataset, ...).
            An approximate index may return fewer than ``top`` hits for a
            query; those are left out.

        Example:
            >>> hits = index.search(extractor.embed(["q.jpg"]), top=5)
            >>> hits[["rank", "score", "pid", "camid", "path"]]
        """
        scores, ids = self._search(embeddings, top)
        found = ids >= 0
        query, rank = np.nonzero(found)
        rows = self.table.iloc[ids[found]].reset_index(drop=True)
        hits = pd.DataFrame({"query": query, "rank": rank + 1, "score": scores[found]})
        hits = pd.concat([hits, rows], axis=1)
        first = [c for c in HIT_COLUMNS if c in hits.columns]
        return hits[first + [c for c in hits.columns if c not in first]]

    def distances(self, embeddings, search_all=None):
        """Cosine distances ``1 - score`` from every query to every gallery row, ``[Q, N]``.

        In gallery order, for :func:`keras_reid.evaluation.metrics.rank_metrics` to score
        with its protocol (ties broken by gallery order, as for ``evaluate``).
        The exact index scores every row with one float32 matrix product of
        the queries and its stored vectors: the computation of
        ``pairwise_distance(..., metric="cosine")``, so the result is that of
        ``evaluate`` bit for bit. ``search_all`` (the default for hnsw and
        ivf) asks the faiss index for the whole gallery instead and scatters
        the hits; rows it does not return get distance 2 (the largest cosine
        distance) and rank last. Memory: 4 bytes per query and gallery row.
        """
        from keras_reid.evaluation.metrics.distance import pairwise_distance

        embeddings = _as_embeddings(embeddings, "query embeddings", self.dim)
        if search_all is None:
            search_all = self.kind != "exact"
        if not search_all:
            return pairwise_distance(embeddings, self._stored(), metric="cosine")
        out = np.full((len(embeddings), len(self)), 2.0, np.float32)
        for start in range(0, len(embeddings), _CHUNK_ROWS):
            scores, ids = self._search(embeddings[start : start + _CHUNK_ROWS], len(self))
            block = out[start : start + _CHUNK_ROWS]
            rows = np.broadcast_to(np.arange(len(block))[:, None], ids.shape)
            found = ids >= 0
            block[rows[found], ids[found]] = np.maximum(1.0 - scores[found], 0.0)
        return out

    def _stored(self):
        """The exact index's vectors ``[N, D]``: a view of its own storage, not a copy."""
        faiss = _faiss()
        if isinstance(self.index, faiss.IndexFlat):
            return faiss.rev_swig_ptr(self.index.get_xb(), len(self) * self.dim).reshape(
                len(self), self.dim
            )
        return self.index.reconstruct_n(0, len(self))

    def recall(self, embeddings, top=10, exact=None):
        """Recall@``top`` of this index against exact search: the share of true top hits found.

        Args:
            embeddings: query embeddings ``[Q, D]``.
            top: how many neighbours (default 10).
            exact: the exact index to compare with (default: an ``IndexFlatIP``
                built here from this index's vectors, when it can give them back).
        """
        scores, ids = self._search(embeddings, top)
        if exact is None:
            faiss = _faiss()
            exact = faiss.IndexFlatIP(self.dim)
            exact.add(self.index.reconstruct_n(0, len(self)))
        elif isinstance(exact, GalleryIndex):
            exact = exact.index
        _, truth = exact.search(_as_embeddings(embeddings, "query embeddings", self.dim), top)
        return recall_at(ids, truth)

    def check_model(self, fingerprint, dim, model_path=None):
        """Refuse a query model other than the index's (another dimension or other weights)."""
        given = model_path or "the given model"
        if dim != self.dim:
            raise ReIDError(
                f"{given} gives {dim}-dimensional embeddings but the index holds "
                f"{self.dim}-dimensional ones from {self.meta.get('model')}; search with that "
                "model or build the index from this one's features."
            )
        expected = self.meta.get("model_sha256")
        if expected and fingerprint != expected:
            raise ReIDError(
                f"the index was built from features of {self.meta.get('model')} (sha256 "
                f"{expected[:12]}) but the query model is {given} (sha256 {fingerprint[:12]}); "
                "search with the index's model or build the index from this one's features."
            )


def recall_at(found, truth):
    """The mean share of each row of ``truth`` (ids) that the same row of ``found`` holds."""
    found, truth = np.asarray(found), np.asarray(truth)
    hits = [len(np.intersect1d(f[f >= 0], t[t >= 0])) for f, t in zip(found, truth, strict=True)]
    return float(np.sum(hits) / max(1, np.sum(truth >= 0)))
