"""Benchmark: k-reciprocal re-ranking, ours against the authors' numpy code.

Each measurement runs in a fresh subprocess, so its peak resident memory
(``resource.getrusage``) is its own; "extra MB" is the peak minus the memory
held once the input distance matrices exist (Python, TensorFlow's import and
the inputs themselves are not counted). The authors' code is the oracle copy
in tests/metrics/test_rerank.py (Zhong et al., CVPR 2017). Features come from
bench/eval_speed.py's Market-like generator.

    python bench/rerank_speed.py [--repeats 2] [--authors-at-scale]

At Market-1501 scale (3,368 x 15,913) the authors' code needs about 9 GB and
many minutes, so by default its figures there are extrapolated (N^2) from the
measured 1,000 x 5,000 run; --authors-at-scale runs it for real.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(impl, num_query, num_gallery, repeats):
    """Run one implementation in this process; print seconds and extra MB as JSON."""
    import resource
    import time

    sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "metrics"), str(ROOT)]
    from eval_speed import market_like

    from keras_reid.evaluation.metrics import pairwise_distance, re_rank

    if impl == "authors":
        from test_rerank import authors_re_ranking as run
    else:
        run = re_rank
    q_feats, g_feats, _, _ = market_like(seed=2, num_query=num_query, num_gallery=num_gallery)
    q_g = pairwise_distance(q_feats, g_feats)
    q_q = pairwise_distance(q_feats, q_feats)
    g_g = pairwise_distance(g_feats, g_feats)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = run(q_g, q_q, g_g)
        best = min(best, time.perf_counter() - start)
        del out
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    inputs_mb = (q_g.nbytes + q_q.nbytes + g_g.nbytes) / 2**20
    print(
        json.dumps({"seconds": best, "extra_mb": (peak - baseline) / 1024, "inputs_mb": inputs_mb})
    )


def measure(impl, num_query, num_gallery, repeats):
    command = [sys.executable, __file__, "--child", impl, str(num_query), str(num_gallery)]
    command += ["--repeats", str(repeats)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{impl} {num_query}x{num_gallery} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(label, ours, theirs=None, estimated=False):
    text = f"{label:>14} {ours['seconds']:>8.2f} s {ours['extra_mb']:>8.0f} MB"
    if theirs:
        mark = "~" if estimated else " "
        text += f"   {mark}{theirs['seconds']:>7.1f} s {mark}{theirs['extra_mb']:>7.0f} MB"
        text += f"   {theirs['seconds'] / ours['seconds']:>5.1f}x"
    print(text, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--authors-at-scale", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("IMPL", "Q", "G"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, num_query, num_gallery = args.child
        child(impl, int(num_query), int(num_gallery), args.repeats)
        return

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    header = f"{'query x gallery':>14} {'ours':>10} {'extra':>11}   {'authors':>9} {'extra':>10}"
    print(header + "   speed-up")
    ours = measure("ours", 1000, 5000, args.repeats)
    theirs = measure("authors", 1000, 5000, 1)
    row("1000 x 5000", ours, theirs)

    market = measure("ours", 3368, 15913, args.repeats)
    if args.authors_at_scale:
        row("3368 x 15913", market, measure("authors", 3368, 15913, 1))
    else:
        # The authors' cost is dominated by N x N arrays and passes (N = Q + G).
        scale = ((3368 + 15913) / 6000) ** 2
        estimate = {k: theirs[k] * scale for k in ("seconds", "extra_mb")}
        row("3368 x 15913", market, estimate, estimated=True)
    print("(~ = extrapolated from 1000 x 5000 by (N / 6000)^2)")
    print(f"inputs at Market scale (not counted above): {market['inputs_mb']:.0f} MB")

    print("\ngrowth with the gallery size (1,000 queries):")
    for size in (1000, 4000, 16000):
        ours = measure("ours", 1000, size, args.repeats)
        theirs = measure("authors", 1000, size, 1) if size <= 4000 else None
        row(f"1000 x {size}", ours, theirs)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
