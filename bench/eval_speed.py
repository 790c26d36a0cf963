"""Benchmark: features -> Market-1501 metrics, at Market-1501 scale.

Random features shaped like Market-1501's test split (3,368 queries, 15,913
gallery images, 128-d, ~750 identities, 6 cameras, distractors and junk),
clustered by identity with a per-camera shift so that the ranks look like a
trained model's (Rank-1 about 92%, mAP about 67%). Prints the best of a few
runs for: the distance matrix, rank_metrics (Market rule and -nd), both
rules at once, the whole ``evaluate`` path, and a plain per-query numpy loop
(torchreid's ``eval_market1501`` algorithm) for reference; then how time and
memory grow with the gallery size.

    python bench/eval_speed.py [--repeats 3] [--skip-naive]
"""

import argparse
import os
import time
import tracemalloc
from functools import partial

import numpy as np
import pandas as pd

from keras_reid.evaluation.metrics import (
    evaluate,
    pairwise_distance,
    rank_metrics,
    rank_metrics_for_rules,
)


def market_like(seed=0, num_query=3368, num_gallery=15913, dim=128, num_ids=750, cameras=6):
    """Features and tables shaped like Market-1501's test split.

    About 17% of the gallery are distractors (pid 0, features from no
    identity) and 5% junk (pid -1, close to a real identity, as Market's
    junk boxes are bad crops of real people).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids + 1, dim)).astype(np.float32)
    camera_shift = 0.5 * rng.normal(size=(cameras, dim)).astype(np.float32)

    def features(pids, camids, noise):
        x = centres[pids] + camera_shift[camids]
        return x + noise * rng.normal(size=x.shape).astype(np.float32)

    q_pids = rng.integers(1, num_ids + 1, num_query)
    q_camids = rng.integers(0, cameras, num_query)
    g_pids = rng.integers(1, num_ids + 1, num_gallery)
    g_camids = rng.integers(0, cameras, num_gallery)
    kind = rng.random(num_gallery)
    g_pids[kind < 0.17] = 0
    g_pids[(kind >= 0.17) & (kind < 0.22)] = -1
    q_feats = features(q_pids, q_camids, 1.0)
    g_feats = features(np.maximum(g_pids, 1), g_camids, 1.0)
    distractor = g_pids == 0
    g_feats[distractor] = 1.1 * rng.normal(size=(int(distractor.sum()), dim))
    junk = g_pids == -1
    g_feats[junk] += 0.8 * rng.normal(size=(int(junk.sum()), dim)).astype(np.float32)

    def table(pids, camids, name):
        return pd.DataFrame(
            {
                "path": [f"/{name}/{i}.jpg" for i in range(len(pids))],
                "pid": pids,
                "camid": camids,
                "dataset": "market-like",
            }
        )

    return q_feats, g_feats, table(q_pids, q_camids, "query"), table(g_pids, g_camids, "gallery")


def naive_market(dist, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """torchreid's per-query numpy evaluation (eval_market1501), junk removed as there."""
    indices = np.argsort(dist, axis=1)
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    all_cmc, all_ap = [], []
    for q in range(dist.shape[0]):
        order = indices[q]
        remove = ((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q])) | (
            g_pids[order] == -1
        )
        raw_cmc = matches[q][~remove]
        if not raw_cmc.any():
            continue
        cmc = raw_cmc.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_rel = raw_cmc.sum()
        precision = raw_cmc.cumsum() / (np.arange(len(raw_cmc)) + 1.0)
        all_ap.append((precision * raw_cmc).sum() / num_rel)
    return np.mean(all_cmc, axis=0), float(np.mean(all_ap))


def best_time(fn, repeats):
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def peak_mb(fn):
    """Peak of numpy/Python allocations during fn() (tracemalloc), in MB."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def growth_row(num_gallery, repeats):
    """Distance and rank_metrics time, and rank_metrics' peak memory, for one gallery size."""
    q_feats, g_feats, query, gallery = market_like(seed=1, num_gallery=num_gallery)
    labels = [query.pid.to_numpy(), gallery.pid.to_numpy()]
    labels += [query.camid.to_numpy(), gallery.camid.to_numpy()]
    d_seconds, dist = best_time(partial(pairwise_distance, q_feats, g_feats), repeats)
    r_seconds, _ = best_time(partial(rank_metrics, dist, *labels), repeats)
    peak = peak_mb(partial(rank_metrics, dist, *labels))
    return (
        f"{num_gallery:>8} {dist.nbytes / 2**20:>8.0f} {d_seconds:>11.3f} {r_seconds:>15.3f} "
        f"{peak:>8.0f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-naive", action="store_true", help="skip the ~7 s reference loop")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    q_feats, g_feats, query, gallery = market_like()
    labels = [query.pid.to_numpy(), gallery.pid.to_numpy()]
    labels += [query.camid.to_numpy(), gallery.camid.to_numpy()]
    print(f"queries {len(query)}, gallery {len(gallery)} ({(gallery.pid == 0).sum()} distractors, "
          f"{(gallery.pid == -1).sum()} junk), dim {q_feats.shape[1]}")  # fmt: skip

    seconds, dist = best_time(partial(pairwise_distance, q_feats, g_feats), args.repeats)
    print(f"pairwise_distance (euclidean, float32)     {seconds:6.3f} s")
    seconds, market = best_time(partial(rank_metrics, dist, *labels), args.repeats)
    print(f"rank_metrics, Market rule                  {seconds:6.3f} s   {market}")
    nd_metrics = partial(rank_metrics, dist, *labels, different_camera_only=True)
    seconds, nd = best_time(nd_metrics, args.repeats)
    print(f"rank_metrics, -nd rule                     {seconds:6.3f} s   {nd}")
    seconds, _ = best_time(partial(rank_metrics_for_rules, dist, *labels), args.repeats)
    print(f"rank_metrics_for_rules, both rules         {seconds:6.3f} s")
    seconds, _ = best_time(partial(evaluate, q_feats, g_feats, query, gallery), args.repeats)
    print(f"evaluate: features -> both rules -> row    {seconds:6.3f} s")

    if not args.skip_naive:
        seconds, (cmc, m_ap) = best_time(partial(naive_market, dist, *labels), 1)
        print(f"plain per-query numpy loop (reference)     {seconds:6.3f} s")
        print(
            f"  agreement with rank_metrics: |dCMC| {np.abs(cmc - market.cmc).max():.1e}, "
            f"|dmAP| {abs(m_ap - market.mAP):.1e}"
        )

    print("\ngrowth with the gallery size (3,368 queries, Market rule):")
    print(f"{'gallery':>8} {'dist MB':>8} {'distance s':>11} {'rank_metrics s':>15} {'peak MB':>8}")
    for size in (1000, 4000, 16000, 64000):
        print(growth_row(size, args.repeats), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
