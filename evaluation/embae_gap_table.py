"""EmbAE's Tables 1-4 and the paper's claims, from the runs of embae_synth_gap_table.sh.

    python evaluation/embae_gap_table.py RUNS [--out table.md] [--csv runs.csv] [--target NAME]

RUNS holds, per setting ("one": synth-a -> the target, "two": synth-a + synth-c
-> the target; synth-d, or CUHK03 for embae_cuhk03_table.sh, named by
--target) and seed: embae_<setting>_s<seed> (the baseline embedding, every
EmbAE variant and the bn_adapt control), pul_<setting>_s<seed> (baseline PUL:
its own classification-trained start, then fine-tuned) and
pulemb_<setting>_s<seed> (PUL started from the same stage-1 embedding as
EmbAE). A missing kind of run leaves its rows out.

For each setting and test-time views (the image and its mirror; Hermans et
al.'s ten views): the scores as mean ± std over seeds with the mean change over
each row's own baseline (the paper's Tables 1-2 and 3-4), then the paper's
claims as differences paired by seed with 95% Student-t intervals and a
verdict ("holds": the interval is above 0; "reversed": below; "unresolved":
it contains 0). "Gains shrink with more sources" compares the gains over the
baseline of the two settings, whose runs are not paired: a Welch interval.
"""

import argparse
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keras_reid imports TensorFlow

import numpy as np
import pandas as pd
from scipy import stats

from keras_reid.errors import ReIDError
from keras_reid.evaluation.compare import differences_table, verdict
from keras_reid.evaluation.reports import SCORE_COLUMNS, SCORE_TITLES
from keras_reid.fileio import atomic_output, write_text

# The settings' titles, for a target (--target: synth-d by default; CUHK03 for
# train_scripts/embae_cuhk03_table.sh's runs).
SETTINGS = {
    "one": "one source: synth-a -> {target}",
    "two": "two sources: synth-a + synth-c -> {target}",
}
VIEWS = {"flip": "results.csv", "ten": "results_ten_views.csv"}
VARIANTS = ("all", "fix_nui", "new_nui", "dataset_nui", "cam_nui")
PUL_ROWS = ("baseline PUL", "fine-tuned PUL", "PUL from z_id")
# Each row's reference for the change in brackets: its own start model.
REFERENCE = {"fine-tuned PUL": "baseline PUL", "PUL from z_id": "baseline"}
RUN = re.compile(r"^(embae|pul|pulemb)_(one|two)_s(\d+)$")


def read_runs(folder):
    """Every finished run's rows: setting, seed, views, method, and the scores."""
    if not os.path.isdir(folder):
        raise ReIDError(f"no folder {folder}; give the RUNS folder of embae_synth_gap_table.sh.")
    rows = []
    for name in sorted(os.listdir(folder)):
        match = RUN.match(name)
        if not match or not os.path.isfile(os.path.join(folder, name, "results.csv")):
            continue
        kind, setting, seed = match.group(1), match.group(2), int(match.group(3))
        for views, file in VIEWS.items():
            path = os.path.join(folder, name, file)
            if not os.path.isfile(path):
                continue
            frame = pd.read_csv(path)
            if kind == "embae":
                methods = dict(zip(frame["model"], frame["model"], strict=True))
            else:
                last = frame["model"].iloc[-1]
                start, end = (
                    ("baseline PUL", "fine-tuned PUL") if kind == "pul" else (None, "PUL from z_id")
                )
                methods = {last: end, **({"start": start} if start else {})}
            for _, row in frame.iterrows():
                method = methods.get(row["model"])
                if method is None:
                    continue
                scores = {score: float(row[score]) for score in SCORE_COLUMNS}
                rows.append(
                    {"setting": setting, "seed": seed, "views": views, "method": method, **scores}
                )
    if not rows:
        raise ReIDError(f"{folder}: no finished embae_/pul_/pulemb_<setting>_s<seed> run in it.")
    return pd.DataFrame(rows)


def _cell(values, reference=None):
    text = f"{values.mean():.3f}"
    if len(values) > 1:
        text += f" ± {values.std(ddof=1):.3f}"
    if reference is not None:
        text += f" ({(values - reference).mean():+.3f})"
    return text


def scores_table(frame, methods, scores=SCORE_COLUMNS):
    """Mean ± std over seeds per method, with the mean change over the method's reference."""
    per_seed = frame.pivot_table(index="seed", columns="method", values=list(scores))
    present = [m for m in methods if m in frame["method"].unique()]
    lines = [
        "| model | seeds | " + " | ".join(SCORE_TITLES[s] for s in scores) + " |",
        "| --- | ---: |" + " ---: |" * len(scores),
    ]
    for method in present:
        reference = (
            None if method in ("baseline", "baseline PUL") else REFERENCE.get(method, "baseline")
        )
        cells = []
        for score in scores:
            values = per_seed[score][method].dropna()
            base = None
            if reference is not None and reference in per_seed[score]:
                base = per_seed[score][reference].reindex(values.index)
            cells.append(_cell(values, base))
        lines.append(
            f"| {method} | {len(per_seed[scores[0]][method].dropna())} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def claims(frame):
    """The paper's claims within a setting, as (a, b) pairs for :func:`differences_table`."""
    pairs = [(variant, "baseline") for variant in VARIANTS]
    pairs += [("cam_nui", other) for other in ("fix_nui", "new_nui", "dataset_nui", "all")]
    pairs += [("fix_nui", "new_nui"), ("bn_adapt", "baseline")]
    pairs += [(variant, "bn_adapt") for variant in VARIANTS]
    pairs += [
        ("cam_nui", "fine-tuned PUL"),
        ("cam_nui", "PUL from z_id"),
        ("fine-tuned PUL", "baseline PUL"),
    ]
    pairs += [("PUL from z_id", "baseline")]
    # The paper's Tables 3-4 also compare improvements over each method's own start.
    # (PUL from z_id starts from the baseline: its gain comparison is the plain one above.)
    pairs += [("gain: cam_nui", "gain: fine-tuned PUL")]
    present = set(frame["method"])
    return [(a, b) for a, b in pairs if a in present and b in present]


def with_gains(frame):
    """``frame`` plus rows "gain: <method>": each seed's change over the method's own start."""
    added = []
    for method in ("cam_nui", "fine-tuned PUL"):
        reference = REFERENCE.get(method, "baseline")
        for score in SCORE_COLUMNS:
            try:
                gain = gains(frame, method, reference, score)
            except KeyError:
                break
            for seed, value in gain.items():
                added.append(
                    {"seed": seed, "method": f"gain: {method}", "score": score, "value": value}
                )
    if not added:
        return frame
    wide = (
        pd.DataFrame(added)
        .pivot_table(index=["seed", "method"], columns="score", values="value")
        .reset_index()
    )
    return pd.concat([frame, wide], ignore_index=True)


def gains(frame, method, reference="baseline", score="rank1"):
    """Per-seed gain of ``method`` over ``reference``: a Series indexed by seed."""
    table = frame.pivot_table(index="seed", columns="method", values=score)
    return (table[method] - table[reference]).dropna()


def welch(a, b, confidence=0.95):
    """Mean of a - mean of b with a Welch t-interval (unpaired samples)."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    mean = a.mean() - b.mean()
    if va + vb == 0:  # no spread at all: no interval (the verdict is "unresolved")
        return mean, np.nan, np.nan
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, dof) * np.sqrt(va + vb)
    return mean, mean - half, mean + half


def shrink_table(frame):
    """Gains over the baseline with one source minus with two (the paper: gains shrink)."""
    head = "| gain over the baseline | score | one source | two sources |"
    lines = [
        head + " one − two [95% Welch CI] | verdict |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    one, two = (frame[frame["setting"] == s] for s in ("one", "two"))
    for method, reference in [
        *((v, "baseline") for v in VARIANTS),
        ("fine-tuned PUL", "baseline PUL"),
    ]:
        for score in SCORE_COLUMNS:
            try:
                a, b = gains(one, method, reference, score), gains(two, method, reference, score)
            except KeyError:
                continue
            if len(a) < 2 or len(b) < 2:
                continue
            mean, low, high = welch(a, b)
            lines.append(
                f"| {method} | {SCORE_TITLES[score]} | {a.mean():+.3f} | {b.mean():+.3f} | "
                f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] | {verdict(low, high)} |"
            )
    return "\n".join(lines) + "\n"


def report(frame, target="synth-d"):
    """The whole markdown report; ``target`` names the target in the settings' titles."""
    parts = []
    for views, title in (("flip", "image + mirror"), ("ten", "ten views (five crops + mirrors)")):
        shown = frame[frame["views"] == views]
        for setting, label in SETTINGS.items():
            rows = shown[shown["setting"] == setting]
            if rows.empty:
                continue
            parts.append(f"### {label.format(target=target)}, {title}\n")
            note = ""
            if setting == "one":
                note = (
                    "\nWith one source, dataset_nui is new_nui with another initialisation "
                    "(one source group beside the target's).\n"
                )
            parts.append(scores_table(rows, ("baseline", *VARIANTS, "bn_adapt")) + note)
            if rows["method"].isin(PUL_ROWS).any():
                parts.append(
                    "\n"
                    + scores_table(
                        rows,
                        ("baseline PUL", "fine-tuned PUL", "baseline", "cam_nui", "PUL from z_id"),
                        ("rank1", "mAP"),
                    )
                )
            claim_frame = with_gains(rows).assign(trunk=setting, name=target)
            table = differences_table(claim_frame, claims(claim_frame), scores=SCORE_COLUMNS)
            table = table.replace("| trunk |", "| sources |", 1)
            parts.append("\nClaims, paired by seed (a − b):\n\n" + table + "\n")
        if set(shown["setting"]) == {"one", "two"}:
            parts.append(
                f"### Gains with one source and with two, {title}\n\n" + shrink_table(shown) + "\n"
            )
    return "\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="the RUNS folder of train_scripts/embae_synth_gap_table.sh")
    parser.add_argument("--out", help="also write the markdown report to this file")
    parser.add_argument("--csv", help="write every run's rows (CSV)")
    parser.add_argument(
        "--target", default="synth-d", help="the target's name in the titles (default synth-d)"
    )
    args = parser.parse_args(argv)
    try:
        frame = read_runs(args.runs)
        text = report(frame, args.target)
        print(text)
        if args.out:
            write_text(args.out, text)
        if args.csv:
            with atomic_output(args.csv) as temporary:
                frame.to_csv(temporary, index=False)
    except ReIDError as error:
        print(f"embae_gap_table: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
