"""Results files: one evaluation's report, and tables of runs and their scores.

:func:`write_report` writes ``keras-reid evaluate``'s results (CSV, markdown,
CMC and ranked-list figures); :func:`write_score_results` the score tables
of the EmbAE and PUL recipes; :func:`collect_runs` and :func:`runs_table`
gather finished runs into mean ± std tables.
"""

import os

import numpy as np

from keras_reid.data.dataset import spec_labels
from keras_reid.environment import versions_line, with_versions
from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics import format_results
from keras_reid.evaluation.plots import plot_cmc, plot_ranked_lists, plot_scores
from keras_reid.fileio import make_folder, write_text

SCORE_COLUMNS = ("rank1", "rank1_nd", "mAP", "mAP_nd")


SCORE_TITLES = {"rank1": "Rank-1", "rank1_nd": "Rank-1-nd", "mAP": "mAP", "mAP_nd": "mAP-nd"}


def write_report(row, ranking, name, out, worst_first=True):
    """results.csv, results.md, cmc.png and ranked_lists.png for one evaluation.

    The figures show the ranking the results were scored on
    (:func:`keras_reid.evaluation.metrics.evaluate.rank_protocol`: the dataset's
    protocol, with its re-ranking): for a video dataset the ranked lists show
    tracklets, for CUHK03 the CMC is the single-shot one.

    Args:
        row: the results row of :func:`evaluate_model`.
        ranking: the :func:`~keras_reid.evaluation.metrics.evaluate.rank_protocol`
            result it came from.
        name: the dataset's name, for titles.
        out: the report folder (created if needed).
        worst_first: ranked lists show the queries with the lowest AP first.
    """
    make_folder(out)
    write_results_files(row, out, "results", format_results(row, markdown=True) + "\n")
    plot_cmc(
        {
            "market rule": ranking.results["market"].cmc,
            "-nd (other cameras only)": ranking.results["nd"].cmc,
        },
        os.path.join(out, "cmc.png"),
        title=f"CMC on {name}",
    )
    plot_ranked_lists(
        ranking.dist,
        ranking.query_table,
        ranking.gallery_table,
        os.path.join(out, "ranked_lists.png"),
        worst_first=worst_first,
    )


def collect_runs(runs):
    """The results of finished runs, one row per (run, model).

    Each run folder holds ``results.csv`` (columns model and the scores) and
    the ``config.yaml`` the run recorded; the setting ("sources -> target")
    is read from the config's ``data`` section.

    Args:
        runs: run folders, e.g. several seeds of one config and other configs.

    Returns:
        a DataFrame with columns run, setting, model, rank1, rank1_nd, mAP, mAP_nd.

    Example:
        >>> frame = collect_runs(["runs/embae_synth_s0", "runs/embae_synth_s1"])
    """
    import pandas as pd
    import yaml

    frames = []
    for run in runs:
        results, config = (os.path.join(run, name) for name in ("results.csv", "config.yaml"))
        for path in (results, config):
            if not os.path.isfile(path):
                raise ReIDError(
                    f"{run}: no {os.path.basename(path)}; give finished run folders "
                    "(an interrupted run finishes with --resume)."
                )
        frame = pd.read_csv(results)
        missing = [c for c in ("model", *SCORE_COLUMNS) if c not in frame.columns]
        if missing:
            raise ReIDError(
                f"{results}: no column(s) {', '.join(missing)}; expected model, "
                f"{', '.join(SCORE_COLUMNS)} as a training run writes them."
            )
        with open(config, encoding="utf-8") as stream:
            data = (yaml.safe_load(stream) or {}).get("data") or {}
        sources = data.get("sources", data.get("train"))
        sources = sources if isinstance(sources, list) else [sources]
        sources = [spec for spec in sources if spec is not None]
        target = data.get("target", data.get("val"))
        # Two roots of one loader in a run are told apart (market1501:A -> market1501:C).
        labels = spec_labels([*sources, *([] if target is None else [target])])
        setting = " + ".join(labels[: len(sources)])
        if target is not None:
            setting += f" -> {labels[-1]}"
        frame.insert(0, "setting", setting)
        frame.insert(0, "run", run)
        frames.append(frame[["run", "setting", "model", *SCORE_COLUMNS]])
    if not frames:
        raise ReIDError("no run folders given; give at least one finished run.")
    return pd.concat(frames, ignore_index=True)


def score_table(mean, std=None, baseline="baseline"):
    """A markdown table of scores per model, the change over ``baseline`` in brackets.

    The form of the EmbAE paper's tables. Rows keep ``mean``'s order.

    Args:
        mean: a DataFrame indexed by model with the columns ``SCORE_COLUMNS``.
        std: an optional DataFrame of the same shape: cells then read "mean ± std"
            (a NaN std, from a single run, is left out).
        baseline: the row the others are compared with (no brackets when absent).

    Example:
        >>> print(score_table(results.set_index("model")))
    """
    lines = [
        "| model | " + " | ".join(SCORE_TITLES[name] for name in SCORE_COLUMNS) + " |",
        "| --- | " + " | ".join("---:" for _ in SCORE_COLUMNS) + " |",
    ]
    for model in mean.index:
        cells = []
        for name in SCORE_COLUMNS:
            cell = f"{mean.loc[model, name]:.3f}"
            if std is not None and not np.isnan(std.loc[model, name]):
                cell += f" ± {std.loc[model, name]:.3f}"
            if model != baseline and baseline in mean.index:
                cell += f" ({mean.loc[model, name] - mean.loc[baseline, name]:+.3f})"
            cells.append(cell)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def runs_table(frame, baseline="baseline"):
    """Markdown tables of :func:`collect_runs`'s rows: one per setting, mean (± std) over runs.

    Rows keep the runs' model order; with several runs of a setting a cell
    reads "mean ± std" (sample std), and every model but ``baseline`` shows
    its mean change over the baseline's mean in brackets, as in the EmbAE
    paper's tables.
    """
    parts = []
    for setting, rows in frame.groupby("setting", sort=False):
        count = rows["run"].nunique()
        grouped = rows.groupby("model", sort=False)[list(SCORE_COLUMNS)]
        heading = f"### {setting} ({count} run{'s' if count > 1 else ''})\n\n"
        parts.append(heading + score_table(grouped.mean(), grouped.std(ddof=1), baseline))
    return "\n".join(parts)


def results_markdown(results):
    """A markdown table of the scores, with the change over the baseline row in brackets."""
    return score_table(results.set_index("model"))


def write_results_files(results, out, name, markdown):
    """``{name}.csv`` and ``{name}.md`` in ``out``, atomically, each recording the versions.

    The CSV gains one column per library version
    (:data:`keras_reid.environment.VERSION_COLUMNS`) and the markdown a line
    naming them under its table: the same code and seed score otherwise under
    other libraries.
    """
    write_text(os.path.join(out, f"{name}.csv"), with_versions(results).to_csv(index=False))
    write_text(os.path.join(out, f"{name}.md"), f"{markdown}\nComputed with {versions_line()}.\n")


def write_score_results(results, out, title="EmbAE", name="results", baseline="baseline"):
    """{name}.csv, .md and .png of a scores table in ``out``, written atomically.

    ``results`` has a "model" column, one row per model (``baseline``, the
    first, is the reference of the changes in brackets) and the
    :data:`SCORE_COLUMNS`; the files record the library versions.
    """
    markdown = score_table(results.set_index("model"), None, baseline)
    write_results_files(results, out, name, markdown)
    plot_scores(results, os.path.join(out, f"{name}.png"), SCORE_COLUMNS, title)


def brief_scores(row, baseline=None):
    """One line of a row's scores (with the change over ``baseline`` in brackets), for logs."""
    parts = []
    for name in SCORE_COLUMNS:
        text = f"{name} {row[name]:.3f}"
        if baseline is not None:
            text += f" ({row[name] - baseline[name]:+.3f})"
        parts.append(text)
    return ", ".join(parts)
