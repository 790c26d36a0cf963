"""Compare finished runs on several test datasets: the form of the MSML paper's Table 1.

A comparison is a set of run folders (losses x trunks x seeds, say), each
scored on every test dataset once (the scores are kept in the run's
``scores.csv``, so adding a dataset or a run scores only what is new), then
tabled by trunk and method, mean ± std over the runs (seeds) of each, and the
paper's claimed orderings (:mod:`keras_reid.evaluation.claims`) checked as
paired differences over seeds with 95% t-intervals.

Example::

    frame = score_runs(glob.glob("runs/msml_synth/*/*_s?"), ["synth-a", "synth-b"])
    print(method_table(frame))
    print(differences_table(frame, MSML_ORDERINGS))
"""

import json
import logging
import os

import numpy as np

from keras_reid.environment import with_versions
from keras_reid.errors import ReIDError
from keras_reid.evaluation.claims import METHOD_ORDER, MSML_ORDERINGS, _read_config, run_labels
from keras_reid.fileio import write_text

logger = logging.getLogger("keras_reid.evaluation")


SCORES_FILE = "scores.csv"


TABLE_SCORES = {
    "mAP": "mAP",
    "rank1": "r=1",
    "rank5": "r=5",
    "rank10": "r=10",
    "rank1_nd": "r=1-nd",
    "mAP_nd": "mAP-nd",
}


def _spec_key(spec):
    return spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True)


def score_run(run, datasets, tta=None, rerank=False, batch_size=128):
    """The scores of ``run``'s model.keras on each dataset, one row each.

    Scores already in ``RUN/scores.csv`` (same dataset spec, test-time
    augmentation and re-ranking) are reused; the others are computed with
    :func:`keras_reid.evaluation.evaluator.evaluate_model` and added to it (written
    atomically), each row with the library versions that computed it (the
    columns of :data:`keras_reid.environment.VERSION_COLUMNS`; empty in rows
    written before they were recorded).

    Args:
        run: a finished run folder (model.keras and config.yaml).
        datasets: dataset specs, ``"name[:root]"`` or ``{name, root, ...}``.
        tta: test-time augmentation (see :func:`keras_reid.serving.extract.extract_features`).
        rerank: k-reciprocal re-ranking with its default parameters.
        batch_size: images per forward pass.

    Returns:
        a DataFrame: dataset (the spec as given), name, tta, rerank and the scores.
    """
    import pandas as pd

    from keras_reid.evaluation.evaluator import evaluate_model
    from keras_reid.serving.model_io import load_keras_model
    from keras_reid.training.training_data import load_spec

    path = os.path.join(run, SCORES_FILE)
    protocol = (tta or "none", bool(rerank))
    cached = pd.read_csv(path, keep_default_na=False) if os.path.isfile(path) else None
    have = set()
    if cached is not None:
        # Files written before re-ranked scores were kept have no column: plain scores.
        flags = cached["rerank"] if "rerank" in cached else pd.Series(False, index=cached.index)
        cached["rerank"] = flags.astype(str) == "True"
        have = set(zip(cached["dataset"], cached["tta"], cached["rerank"], strict=True))
    rows, model = [], None
    for spec in datasets:
        key = _spec_key(spec)
        if (key, *protocol) in have:
            continue
        if model is None:
            final = os.path.join(run, "model.keras")
            if not os.path.isfile(final):
                raise ReIDError(
                    f"{run}: no model.keras; finish the run first (keras-reid train ... --resume)."
                )
            model = load_keras_model(final)
        dataset = load_spec(spec)
        row = evaluate_model(
            model, dataset, tta=tta, rerank=rerank, batch_size=batch_size, progress=False
        )
        row = row.rename(columns={"dataset": "name"})
        row.insert(0, "dataset", key)
        rows.append(with_versions(row))
        logger.info(
            "%s on %s: Rank-1 %.3f, mAP %.3f", run, row["name"][0], *row.loc[0, ["rank1", "mAP"]]
        )
    frame = pd.concat(([cached] if cached is not None else []) + rows, ignore_index=True)
    if rows:
        write_text(path, frame.to_csv(index=False))
    wanted = {(_spec_key(spec), *protocol) for spec in datasets}
    rows = zip(frame["dataset"], frame["tta"], frame["rerank"], strict=True)
    return frame[[row in wanted for row in rows]].reset_index(drop=True)


def score_runs(runs, datasets, tta=None, rerank=False, batch_size=128, labels=None):
    """:func:`score_run` over runs: one row per (run, dataset), labelled by ``labels``.

    ``labels`` maps a run's recorded config to ``(trunk, method, seed)``:
    :func:`run_labels` (default: the MSML table's methods) or :func:`sal_labels`.

    Returns:
        a DataFrame with columns run, trunk, method, seed, dataset, name (the
        dataset's label: ``market1501:A`` and ``market1501:B`` for two roots
        of one loader), tta and the scores (rank1, rank5, mAP, ...).
    """
    import pandas as pd

    from keras_reid.data.dataset import spec_labels

    if not runs:
        raise ReIDError("no run folders given; give at least one finished run.")
    if not datasets:
        raise ReIDError("no test datasets given; name at least one (e.g. --data synth-b).")
    # Two roots of one loader are two columns (market1501:A, market1501:B), not one.
    names = dict(zip(map(_spec_key, datasets), spec_labels(datasets), strict=True))
    frames = []
    for run in runs:
        trunk, method, seed = (labels or run_labels)(_read_config(run))
        frame = score_run(run, datasets, tta=tta, rerank=rerank, batch_size=batch_size)
        frame["name"] = frame["dataset"].map(names)
        for position, (column, value) in enumerate(
            (("run", run), ("trunk", trunk), ("method", method), ("seed", seed))
        ):
            frame.insert(position, column, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _ordered(values, order):
    present = list(dict.fromkeys(values))
    return [v for v in order if v in present] + [v for v in present if v not in order]


def _mean_std(values):
    """``"0.500 ± 0.100"`` over runs (the mean alone for one run)."""
    std = values.std(ddof=1)
    return f"{values.mean():.3f}" + ("" if np.isnan(std) else f" ± {std:.3f}")


def method_table(frame, scores=("mAP", "rank1"), order=METHOD_ORDER):
    """A markdown table: one row per (trunk, method), mean ± std over runs, per dataset.

    The columns are each dataset's ``scores`` (the paper's mAP and r=1) and
    their mean over the datasets ("mean"), computed per run before the
    mean and std over runs. Methods follow ``order``, trunks their first
    appearance.
    """
    names = list(dict.fromkeys(frame["name"]))
    per_run = frame.pivot_table(
        index=["trunk", "method", "run"], columns="name", values=list(scores), sort=False
    )
    for score in scores:
        per_run[(score, "mean")] = per_run[score][names].mean(axis=1)
    columns = [(score, name) for name in [*names, "mean"] for score in scores]
    head = " | ".join(f"{name} {TABLE_SCORES.get(s, s)}" for s, name in columns)
    lines = [
        f"| trunk | method | runs | {head} |",
        "| --- | --- | ---: |" + " ---: |" * len(columns),
    ]
    for trunk in dict.fromkeys(frame["trunk"]):
        rows = per_run.loc[trunk]
        for method in _ordered(rows.index.get_level_values("method"), order):
            values = rows.loc[method]
            cells = []
            for column in columns:
                cells.append(_mean_std(values[column]))
            lines.append(f"| {trunk} | {method} | {len(values)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_differences(frame, pairs, score="rank1", confidence=0.95):
    """Paired differences of methods over seeds, with a Student-t interval.

    For each trunk and each ``(a, b)`` pair, a run's value is its ``score``
    averaged over the test datasets; runs of ``a`` and ``b`` with the same
    seed (the same initialisation and batches) are paired, and the mean of
    ``a - b`` is given with its two-sided ``confidence`` interval (``nan``
    with one pair).

    Returns:
        a DataFrame: trunk, better, worse, score, pairs, mean, low, high, differences.
    """
    import pandas as pd
    from scipy import stats

    per_run = frame.groupby(["trunk", "method", "seed"], sort=False)[score].mean()
    rows = []
    for trunk in dict.fromkeys(frame["trunk"]):
        values = per_run.loc[trunk]
        for better, worse in pairs:
            if better not in values.index or worse not in values.index:
                continue
            a, b = values.loc[better], values.loc[worse]
            seeds = sorted(set(a.index) & set(b.index))
            diff = np.array([a[s] - b[s] for s in seeds], dtype=float)
            mean = float(diff.mean()) if len(diff) else np.nan
            half = np.nan
            if len(diff) > 1:
                scale = diff.std(ddof=1) / np.sqrt(len(diff))
                half = float(stats.t.ppf(0.5 + confidence / 2, len(diff) - 1) * scale)
            rows.append(
                {
                    "trunk": trunk,
                    "better": better,
                    "worse": worse,
                    "score": score,
                    "pairs": len(diff),
                    "mean": mean,
                    "low": mean - half,
                    "high": mean + half,
                    "differences": diff.tolist(),
                }
            )
    return pd.DataFrame(rows)


def verdict(low, high):
    """ "holds" when an interval lies above 0, "reversed" below, "unresolved" across it."""
    if np.isnan(low) or np.isnan(high):
        return "unresolved"
    return "holds" if low > 0 else "reversed" if high < 0 else "unresolved"


def differences_table(frame, pairs, scores=("rank1", "mAP"), confidence=0.95):
    """A markdown table of :func:`paired_differences` for each score, with the verdict."""
    tables = [paired_differences(frame, pairs, score, confidence) for score in scores]
    if tables[0].empty:
        return "(no pair of methods to compare)\n"
    titles = " | ".join(f"{TABLE_SCORES.get(s, s)} a − b [{confidence:.0%} CI]" for s in scores)
    lines = [
        f"| trunk | claim a > b | seeds | {titles} | verdict |",
        "| --- | --- | ---: |" + " ---: |" * len(scores) + " --- |",
    ]
    for i in range(len(tables[0])):
        first = tables[0].iloc[i]
        cells, verdicts = [], []
        for table in tables:
            row = table.iloc[i]
            cells.append(f"{row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]")
            verdicts.append(verdict(row["low"], row["high"]))
        text = verdicts[0] if len(set(verdicts)) == 1 else " / ".join(verdicts)
        lines.append(
            f"| {first['trunk']} | {first['better']} > {first['worse']} | {first['pairs']} | "
            + " | ".join(cells)
            + f" | {text} |"
        )
    return "\n".join(lines) + "\n"


def final_log_values(runs, columns, labels=run_labels):
    """Each run's ``columns`` at its last epoch (its ``log.csv``), labelled as the scores.

    Returns:
        a DataFrame: run, trunk, method, seed and the columns (NaN where a
        run's log has no such column, e.g. a domain loss in a row without one,
        or where a run has no log.csv, which is logged as a warning).
    """
    import pandas as pd

    rows = []
    for run in runs:
        trunk, method, seed = labels(_read_config(run))
        path = os.path.join(run, "log.csv")
        log = pd.read_csv(path) if os.path.isfile(path) else pd.DataFrame()
        if log.empty:
            logger.warning("%s: no training log (log.csv) to read; its row shows –.", run)
        last = log.iloc[-1] if len(log) else pd.Series(dtype=float)
        values = {column: float(last.get(column, np.nan)) for column in columns}
        rows.append({"run": run, "trunk": trunk, "method": method, "seed": seed, **values})
    return pd.DataFrame(rows)


def log_table(frame, columns, order=METHOD_ORDER):
    """A markdown table of :func:`final_log_values`: mean ± std per (trunk, method), "–" if none."""
    lines = [
        "| trunk | method | runs | " + " | ".join(columns) + " |",
        "| --- | --- | ---: |" + " ---: |" * len(columns),
    ]
    for trunk in dict.fromkeys(frame["trunk"]):
        rows = frame[frame["trunk"] == trunk]
        for method in _ordered(rows["method"], order):
            values = rows[rows["method"] == method]
            cells = []
            for column in columns:
                present = values[column].dropna()
                if present.empty:
                    cells.append("–")
                    continue
                cells.append(_mean_std(present))
            lines.append(f"| {trunk} | {method} | {len(values)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison_report(
    frame, order=METHOD_ORDER, claims=MSML_ORDERINGS, scores=("mAP", "rank1"), controls=()
):
    """The table of :func:`method_table` and the claims of :func:`differences_table`, as text.

    ``controls``: pairs that are not the paper's claims (a setting against
    its control), paired by seed in a table of their own when both rows exist.
    """
    text = (
        'Mean ± std over seeds; "mean" averages the datasets per run.\n\n'
        + method_table(frame, scores=scores, order=order)
        + "\nThe paper's claims, paired by seed (a − b, the datasets' mean):\n\n"
        + differences_table(frame, claims)
    )
    present = set(frame["method"])
    controls = [pair for pair in controls if set(pair) <= present]
    if controls:
        text += (
            "\nControls (not the paper's claims), paired by seed (a − b, the datasets' mean):\n\n"
            + differences_table(frame, controls)
        )
    return text


def table_script(
    argv,
    prog,
    doc,
    labels=run_labels,
    order=METHOD_ORDER,
    claims=MSML_ORDERINGS,
    scores=("mAP", "rank1"),
    controls=(),
    log_columns=(),
):
    """The ``main`` of the evaluation/ table scripts: runs in, the comparison out.

    Arguments: RUN... --data SPEC... [--tta flip] [--rerank] [--both] [--out FILE]
    [--csv FILE]. A ``--data`` spec is ``name[:root]`` or a YAML mapping such
    as ``{name: synth-b, ids: 600}``. ``--both`` prints the table without and
    with re-ranking. ``scores`` are the table's columns per dataset;
    ``controls`` pairs compared beside the claims (:func:`comparison_report`);
    ``log_columns`` training-log figures tabled at each run's last epoch
    (:func:`log_table`). Returns the exit code (2 with a one-line error).
    """
    import argparse
    import sys

    import pandas as pd

    def spec(text):
        if not text.lstrip().startswith("{"):
            return text
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise argparse.ArgumentTypeError(f"not a YAML mapping: {text!r} ({error})") from None
        if not isinstance(value, dict) or "name" not in value:
            raise argparse.ArgumentTypeError(f"a mapping needs a 'name': {text!r}")
        return value

    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished run folders")
    parser.add_argument("--data", nargs="+", required=True, type=spec, help="test datasets")
    parser.add_argument("--tta", choices=["flip"], help="test-time augmentation")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    parser.add_argument("--both", action="store_true", help="without and with re-ranking")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", help="also write the markdown tables to this file")
    parser.add_argument("--csv", help="write every (run, dataset) score row to this CSV")
    args = parser.parse_args(argv)
    reranks = [False, True] if args.both else [args.rerank]
    try:
        texts, frames = [], []
        for rerank in reranks:
            frame = score_runs(
                args.runs, args.data, args.tta, rerank, args.batch_size, labels=labels
            )
            title = "With k-reciprocal re-ranking" if rerank else "Without re-ranking"
            texts.append(
                (f"## {title}\n\n" if args.both else "")
                + comparison_report(frame, order, claims, scores, controls)
            )
            frames.append(frame)
        if log_columns:
            logs = final_log_values(args.runs, log_columns, labels)
            texts.append(
                ("## " if args.both else "")
                + "At the last epoch of training (log.csv), mean ± std over seeds:\n\n"
                + log_table(logs, log_columns, order)
            )
        text = "\n".join(texts)
        print(text)
        if args.out:
            write_text(args.out, text)
        if args.csv:
            from keras_reid.fileio import atomic_output

            with atomic_output(args.csv) as temporary:
                pd.concat(frames, ignore_index=True).to_csv(temporary, index=False)
    except ReIDError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0
