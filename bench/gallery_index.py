"""Benchmark: the faiss gallery index (keras_reid.serving.gallery) at a million images.

Part 1: a gallery of ``--rows`` (1,000,000) L2-normalised 128-d float32
embeddings and ``--queries`` (2,000) queries, seeded, in two variants:

* random: uniform on the sphere. Every point is about as far from every
  other; there is no structure for an approximate index to use, so this is
  its worst case (and far from what a trained model gives).
* clustered: 50,000 "identities" of about 20 images each (a centre plus
  noise, within-identity cosine about 0.6), queries drawn from the same
  identities: closer to real re-ID embeddings.

For each index kind: build time, index size (the faiss file) and the growth
of the process's resident memory during the build, queries per second with
1 and 2 threads (a batch of all queries) and one query at a time (1 thread),
and recall@10 against the exact search.

Part 2: a Market-1501-sized protocol (3,368 queries, 19,732 gallery images
with distractors pid 0 and junk pid -1, 6 cameras; bench/eval_speed.py's
generator): Rank-1/mAP/mINP from the exact index (evaluate_with_index: its
stored vectors in one matrix product, and faiss's own search of the whole
gallery) next to keras_reid.evaluation.metrics.evaluate's, and their largest difference.

Part 3: a protocol over the whole million-image clustered gallery
(``--protocol-queries`` queries, 6 cameras): ``evaluate_with_index`` scores it
in blocks of queries, never holding the query x gallery matrix; its time and
the peak of numpy's allocations (tracemalloc).

    python bench/gallery_index.py [--rows 1000000] [--queries 2000] [--variants random,clustered]
        [--protocol-queries 1000] [--parts 1,2,3]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_speed import market_like  # noqa: E402

from keras_reid.evaluation.metrics import evaluate  # noqa: E402
from keras_reid.serving.gallery.index import GalleryIndex, recall_at
from keras_reid.serving.gallery.search import evaluate_with_index

KINDS = {
    "exact": {},
    "hnsw": {"m": 32, "ef_construction": 40, "ef_search": 128},
    "ivf": {"nlist": 4096, "nprobe": 32},
}
LABELS = {
    "m": "M",
    "ef_construction": "efC",
    "ef_search": "ef",
    "nlist": "nlist",
    "nprobe": "nprobe",
}
# Search-time settings also measured on the same index: (parameter, values).
SWEEP = {"hnsw": ("ef_search", (256, 512)), "ivf": ("nprobe", (128,))}


def release_freed_memory():
    """Give freed heap memory back to the system, so the next build's RSS growth is its own."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss_bytes():
    with open("/proc/self/status", encoding="ascii") as stream:
        for line in stream:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def embeddings(variant, rows, queries, dim, seed=0, with_ids=False, spread=0.8):
    """(gallery, queries) L2-normalised; with ``with_ids`` (clustered) also their identities."""
    rng = np.random.default_rng(seed)
    if variant == "random":
        gallery = unit(rng.standard_normal((rows, dim), dtype=np.float32))
        return gallery, unit(rng.standard_normal((queries, dim), dtype=np.float32))
    ids = max(1, rows // 20)
    centres = unit(rng.standard_normal((ids, dim), dtype=np.float32))
    # noise of norm ~spread per image: at 0.8 two images of one identity have cosine ~0.6
    noise = spread / np.sqrt(dim)
    gallery = np.empty((rows, dim), np.float32)
    g_ids = np.empty(rows, np.int64)
    step = 100_000
    for start in range(0, rows, step):
        g_ids[start : start + step] = rng.integers(0, ids, min(step, rows - start))
        part = centres[g_ids[start : start + step]]
        part += noise * rng.standard_normal(part.shape, dtype=np.float32)
        gallery[start : start + step] = unit(part)
    q_ids = rng.integers(0, ids, queries)
    query = centres[q_ids] + noise * rng.standard_normal((queries, dim), dtype=np.float32)
    if with_ids:
        return gallery, unit(query), g_ids, q_ids
    return gallery, unit(query)


def qps(index, queries, threads, one_by_one=0):
    faiss.omp_set_num_threads(threads)
    if one_by_one:
        start = time.perf_counter()
        for row in queries[:one_by_one]:
            index.search(row[None], 10)
        seconds = time.perf_counter() - start
        result = one_by_one / seconds
    else:
        index.search(queries[:50], 10)  # warm-up
        start = time.perf_counter()
        index.search(queries, 10)
        result = len(queries) / (time.perf_counter() - start)
    faiss.omp_set_num_threads(os.cpu_count())
    return result


def index_bytes(index):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "index")
        faiss.write_index(index, path)
        return os.path.getsize(path)


def part_one(variant, rows, num_queries, dim):
    print(f"\n{variant}: {rows:,} x {dim} gallery, {num_queries:,} queries", flush=True)
    start = time.perf_counter()
    gallery, queries = embeddings(variant, rows, num_queries, dim)
    table = pd.DataFrame({"path": np.arange(rows).astype(str), "pid": 0, "camid": 0})
    print(f"  (generated in {time.perf_counter() - start:.1f} s)", flush=True)
    header = (
        f"  {'index':<28} {'build s':>8} {'size MB':>8} {'RSS +MB':>8} "
        f"{'QPS 1thr':>9} {'QPS 2thr':>9} {'QPS 1-by-1':>10} {'recall@10':>9}"
    )
    print(header, flush=True)
    truth = None
    for kind, params in KINDS.items():
        release_freed_memory()
        before = rss_bytes()
        start = time.perf_counter()
        index = GalleryIndex.build(gallery, table, kind=kind, **params)
        build = time.perf_counter() - start
        grown = rss_bytes() - before
        _, found = index.index.search(queries, 10)
        if truth is None:
            truth = found  # the exact index comes first
        label = " ".join([kind, *(f"{LABELS[k]}{v}" for k, v in params.items() if k in LABELS)])
        print(
            f"  {label:<28} {build:>8.1f} {index_bytes(index.index) / 2**20:>8.0f} "
            f"{grown / 2**20:>8.0f} {qps(index.index, queries, 1):>9.0f} "
            f"{qps(index.index, queries, 2):>9.0f} {qps(index.index, queries, 1, 100):>10.0f} "
            f"{recall_at(found, truth):>9.3f}",
            flush=True,
        )
        param, values = SWEEP.get(kind, (None, ()))
        for value in values:
            index.set_params(**{param: value})
            _, found = index.index.search(queries, 10)
            print(
                f"  {'  ' + LABELS[param] + str(value):<28} {'':>8} {'':>8} {'':>8} "
                f"{qps(index.index, queries, 1):>9.0f} {qps(index.index, queries, 2):>9.0f} "
                f"{'':>10} {recall_at(found, truth):>9.3f}",
                flush=True,
            )
        del index


def part_two():
    q_feats, g_feats, q_table, g_table = market_like(seed=0, num_gallery=19732)
    q_feats, g_feats = unit(q_feats), unit(g_feats)
    print(
        f"\nMarket-1501-sized protocol: {len(q_table):,} queries, {len(g_table):,} gallery "
        f"({(g_table.pid == 0).sum():,} distractors, {(g_table.pid == -1).sum():,} junk), "
        f"{g_table.camid.nunique()} cameras",
        flush=True,
    )
    index = GalleryIndex.build(g_feats, g_table)
    rows, names = [], []
    for name, search_all in (("exact index", False), ("exact index, faiss top-all", True)):
        start = time.perf_counter()
        rows.append(evaluate_with_index(index, q_feats, q_table, search_all=search_all))
        rows[-1]["seconds"] = time.perf_counter() - start
        names.append(name)
    start = time.perf_counter()
    rows.append(evaluate(q_feats, g_feats, q_table, g_table, metric="cosine"))
    rows[-1]["seconds"] = time.perf_counter() - start
    names.append("evaluate (cosine)")
    columns = ["rank1", "rank5", "rank10", "mAP", "mINP", "rank1_nd", "mAP_nd"]
    shown = pd.concat(rows, ignore_index=True)[columns]
    shown = (100 * shown).map(lambda v: f"{v:.4f}")
    shown.insert(0, "from", names)
    shown["seconds"] = [f"{row['seconds'][0]:.1f}" for row in rows]
    print(shown.to_string(index=False))
    for name, row in zip(names[:2], rows[:2], strict=True):
        difference = max(abs(row[c][0] - rows[-1][c][0]) for c in columns)
        print(f"  {name}: largest difference from evaluate {difference:.2e} (fractions)")


def part_three(rows, num_queries, dim):
    """A protocol over the whole million: scored in blocks of queries, no full matrix."""
    import tracemalloc

    # Wider identities than part 1 (cosine ~0.2 within one), so that the scores are not all 100%.
    gallery, queries, g_ids, q_ids = embeddings("clustered", rows, num_queries, dim, 1, True, 2.0)
    rng = np.random.default_rng(2)
    g_table = pd.DataFrame(
        {"path": np.arange(rows).astype(str), "pid": g_ids + 1, "camid": rng.integers(0, 6, rows)}
    )
    q_table = pd.DataFrame({"path": np.arange(num_queries).astype(str), "pid": q_ids + 1}).assign(
        camid=rng.integers(0, 6, num_queries)
    )
    index = GalleryIndex.build(gallery, g_table)
    del gallery
    release_freed_memory()
    block = max(1, 2**26 // rows)
    print(
        f"\nA protocol over the whole gallery: {num_queries:,} queries against the {rows:,}-image "
        f"clustered gallery (6 cameras), exact index, blocks of {block} queries; the full "
        f"distance matrix would take {num_queries * rows * 4 / 2**30:.1f} GiB",
        flush=True,
    )
    tracemalloc.start()
    start = time.perf_counter()
    row = evaluate_with_index(index, queries, q_table)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    scores = ", ".join(
        f"{c} {100 * row[c][0]:.2f}" for c in ("rank1", "rank10", "mAP", "rank1_nd", "mAP_nd")
    )
    print(f"  {scores}; {seconds:.0f} s, peak {peak / 2**30:.2f} GiB of numpy allocations")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--variants", default="random,clustered")
    parser.add_argument("--protocol-queries", type=int, default=1000)
    parser.add_argument("--parts", default="1,2,3")
    args = parser.parse_args()
    print(f"faiss {faiss.__version__}, {os.cpu_count()} CPU cores", flush=True)
    parts = args.parts.split(",")
    if "1" in parts:
        for variant in args.variants.split(","):
            part_one(variant, args.rows, args.queries, args.dim)
    if "2" in parts:
        part_two()
    if "3" in parts:
        part_three(args.rows, args.protocol_queries, args.dim)


if __name__ == "__main__":
    main()
