"""Evaluate a model on a dataset and write the report: the ``keras-reid evaluate`` path.

The model is used once, to extract features (with optional test-time
augmentation); everything after that is :mod:`keras_reid.metrics`, which
works on features and tables only.
"""

import os
import zipfile

import keras
import numpy as np

from keras_reid.data.dataset import spec_labels
from keras_reid.data.images import IMAGE_ERRORS, explain_unreadable
from keras_reid.environment import versions_line, with_versions
from keras_reid.errors import ReIDError
from keras_reid.fileio import make_folder, write_text
from keras_reid.inference import extract_features, non_finite_weights
from keras_reid.metrics import (
    format_results,
    plot_cmc,
    plot_ranked_lists,
    plot_scores,
)
from keras_reid.metrics.evaluate import rank_protocol, results_row

# Which protocol a dataset's tables are scored with.
PROTOCOL_OF = {"cuhk03": "cuhk03", "cuhk03_folders": "cuhk03", "mars": "video"}


def one_line(text):
    """``text`` with every run of whitespace (newlines included) collapsed to one space.

    Messages quoted from TensorFlow or Keras span several lines; an error
    message must stay one line, and whole: nothing is cut off.
    """
    return " ".join(str(text).split())


def _not_a_model(path, error):
    """Why the existing file ``path`` did not load as a model, and what to do, in one line."""
    reason = one_line(f"{type(error).__name__}: {error}")
    try:
        with open(path, "rb"):
            pass
    except OSError as unreadable:
        return f"{path} cannot be read ({one_line(unreadable)}); check its permissions."
    extension = os.path.splitext(path)[1].lower()
    try:
        with zipfile.ZipFile(path) as archive:
            is_keras = "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        is_zip = is_keras = False
    else:
        is_zip = True
    if is_keras and extension != ".keras":
        return (
            f"{path} is a .keras archive under another name; Keras loads it only from a name "
            f"ending in .keras: rename it to {os.path.splitext(path)[0]}.keras."
        )
    if is_keras:
        return (
            f"{path} exists but is not a loadable Keras model file (damaged, or it needs code "
            f"or a version this installation lacks: {reason}); pass a .keras file saved by "
            "keras_reid, or copy it again from the run folder."
        )
    if is_zip:
        return (
            f"{path} exists but is not a Keras model file: a zip archive without the "
            "config.json of one; pass the model.keras (or inference.keras) a keras_reid run wrote."
        )
    if extension == ".keras":
        return (
            f"{path} exists but is not a Keras model file: a .keras file is a zip archive and "
            f"this {os.path.getsize(path)}-byte file is not one (a text file, or a truncated "
            "copy or download); pass the model.keras a keras_reid run wrote, or copy it again."
        )
    if extension not in (".h5", ".hdf5"):
        return (
            f"{path} exists but is not a Keras model file: Keras reads .keras files (and "
            "legacy .h5), not this one; pass the model.keras a keras_reid run wrote."
        )
    return (
        f"{path} exists but is not a Keras model file ({reason}); pass a .keras file saved "
        "by keras_reid."
    )


def check_finite_weights(model, where=None):
    """ReIDError naming the weights of ``model`` that hold NaN or infinity (a diverged run).

    ``where`` (default: the model's name) starts the message, e.g. the model file.
    """
    bad = non_finite_weights(model)
    if bad:
        where = where or f"model {model.name!r}"
        raise ReIDError(
            f"{where}: {len(bad)} of {len(model.weights)} weights hold NaN or infinity (e.g. "
            f"{', '.join(bad[:3])}), so every embedding it computes is meaningless: its "
            "training diverged. Re-train with a lower learning rate (schedule.base_lr), or "
            "use an earlier checkpoint (checkpoints/epoch_NNNN.keras in the run folder)."
        )


def check_finite_features(features, where, what="images"):
    """ReIDError when rows of ``features`` [N, D] hold NaN or infinity."""
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        raise ReIDError(
            f"{where} gives non-finite embeddings (NaN or infinity) for {int(bad.sum())} of "
            f"{len(features)} {what} (rows {np.flatnonzero(bad)[:5].tolist()}); the model "
            "overflows or diverged: re-train it with a lower learning rate, or use an "
            "earlier checkpoint."
        )


def check_model(model, where=None):
    """ReIDError unless ``model`` takes RGB images, has an embedding and finite weights.

    ``where`` (e.g. the model file) starts the messages.
    """
    from keras_reid.extractor import inspect_model  # extractor imports this module

    try:
        inspect_model(model)
    except ReIDError as error:
        raise ReIDError(f"{where}: {error}" if where else str(error)) from None
    check_finite_weights(model, where)


def load_keras_model(path, output="embedding"):
    """``keras.models.load_model`` with one-line errors for a wrong file or a missing output.

    The model must also take RGB images ``[batch, H, W, 3]`` and hold finite
    weights (a diverged run's NaN model is refused): see :func:`check_model`.
    """
    path = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.isfile(path):
        raise ReIDError(f"no model file {path}; pass the path of a .keras file.")
    try:
        model = keras.models.load_model(path)
    except Exception as error:  # Keras raises many types for a file that is not a model
        raise ReIDError(_not_a_model(path, error)) from None
    try:
        model = as_dict_outputs(model)
    except ReIDError as error:
        raise ReIDError(f"{path}: {error}") from None
    if output not in model.output_names:
        raise ReIDError(
            f"{path} has no {output!r} output (outputs: {', '.join(model.output_names)}); "
            "expected a keras_reid model with a named embedding output (a dict output with "
            "the key 'embedding', or a single output whose layer is named 'embedding')."
        )
    check_model(model, path)
    return model


def as_dict_outputs(model):
    """``model`` with its outputs as a dict ``{name: tensor}``; other forms are wrapped.

    A model whose single output layer is named "embedding" (a plain tensor,
    or a ``keras.Sequential`` ending in such a layer) is an embedding model
    too; the wrapper shares its layers and weights, and feature extraction
    and serving then read the outputs by name.

    Example:
        >>> as_dict_outputs(sequential)(images)["embedding"]
    """
    if not isinstance(model, keras.Model):
        return model  # inspect_model names the expected type
    try:
        if isinstance(model, keras.Sequential):
            inputs, names = model.inputs[0], [model.layers[-1].name]
        else:
            inputs, names = model.input, model.output_names
        outputs = model.outputs
    except (AttributeError, IndexError, ValueError):
        raise ReIDError(
            f"model {model.name!r} has no defined inputs and outputs (a subclassed or "
            "unbuilt model); build it as a functional model, keras.Model(inputs, outputs), "
            "or a Sequential that starts with keras.Input(shape)."
        ) from None
    if not isinstance(model, keras.Sequential) and isinstance(model.output, dict):
        return model
    return keras.Model(inputs, dict(zip(names, outputs, strict=True)), name=model.name)


def evaluate_model(
    model,
    dataset,
    tta=None,
    rerank=False,
    normalize=True,
    metric="euclidean",
    batch_size=128,
    out=None,
    worst_first=True,
    progress=True,
):
    """Score ``model`` on ``dataset``'s query/gallery; optionally write a report folder.

    Args:
        model: a Keras model with an "embedding" output, or the path of a .keras file.
        dataset: a :class:`keras_reid.data.ReIDDataset` with query and gallery tables.
        tta: test-time augmentation, see :func:`keras_reid.inference.extract_features`.
        rerank: k-reciprocal re-ranking (True, or a dict of k1, k2, lambda_value).
        normalize: L2-normalise embeddings before distances (default True).
        metric: "euclidean", "sqeuclidean" or "cosine".
        batch_size: images per forward pass.
        out: a folder to write results.csv, results.md, cmc.png and ranked_lists.png.
        worst_first: ranked lists show the queries with the lowest AP first.

    Returns:
        a one-row DataFrame (rank1, rank5, rank10, mAP, mINP and their -nd forms).

    Example:
        >>> row = evaluate_model("runs/emb/model.keras", load_dataset("synth-b"), tta="flip")
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ReIDError(
            f"batch size (--batch-size) must be a positive integer, e.g. 128 (lower it if "
            f"memory runs out). Received: batch_size={batch_size!r}"
        )
    if isinstance(model, (str, os.PathLike)):
        model = load_keras_model(model)
    else:
        model = as_dict_outputs(model)
        check_model(model)
    if dataset.query.empty or dataset.gallery.empty:
        raise ReIDError(f"{dataset.label} has no query/gallery split to evaluate on.")
    splits = {"query": dataset.query, "gallery": dataset.gallery}
    try:
        query, gallery = (
            extract_features(model, table, batch_size=batch_size, tta=tta, progress=progress)
            for table in splits.values()
        )
    except ReIDError as error:
        # The query's unreadable images stop the extraction before the gallery is read:
        # name the gallery's too, so that one round of repairs is enough.
        if not isinstance(error.__cause__, IMAGE_ERRORS):
            raise
        named = {f"{dataset.label}/{split}": table for split, table in splits.items()}
        raise explain_unreadable(error.__cause__, named) from error.__cause__
    for features, split in ((query, "query"), (gallery, "gallery")):
        check_finite_features(features, f"model {model.name!r}", f"{dataset.label} {split} images")
    ranking = rank_protocol(
        query,
        gallery,
        dataset.query,
        dataset.gallery,
        metric=metric,
        normalize=normalize,
        rerank=rerank,
        protocol=PROTOCOL_OF.get(dataset.name, "market"),
    )
    row = results_row(ranking, metric=metric, normalize=normalize, rerank=rerank)
    row.insert(0, "dataset", dataset.label)
    row.insert(1, "tta", tta or "none")
    if out is not None:
        write_report(row, ranking, dataset.label, out, worst_first=worst_first)
    return row


def write_report(row, ranking, name, out, worst_first=True):
    """results.csv, results.md, cmc.png and ranked_lists.png for one evaluation.

    The figures show the ranking the results were scored on
    (:func:`keras_reid.metrics.evaluate.rank_protocol`: the dataset's
    protocol, with its re-ranking): for a video dataset the ranked lists show
    tracklets, for CUHK03 the CMC is the single-shot one.

    Args:
        row: the results row of :func:`evaluate_model`.
        ranking: the :func:`~keras_reid.metrics.evaluate.rank_protocol` result it came from.
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


SCORE_COLUMNS = ("rank1", "rank1_nd", "mAP", "mAP_nd")
SCORE_TITLES = {"rank1": "Rank-1", "rank1_nd": "Rank-1-nd", "mAP": "mAP", "mAP_nd": "mAP-nd"}


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
