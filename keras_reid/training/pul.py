"""PUL: progressive unsupervised learning by clustering and fine-tuning (Fan, Zheng & Yang 2018).

"Unsupervised Person Re-identification: Clustering and Fine-tuning" (ACM
TOMM 2018), the comparison method of the EmbAE paper's Tables 3-4. From a
start model trained on labelled source data, each iteration t = 1..T:

1. extracts features of every target train image with the current model
   (the previous iteration's; the start model at t = 1), L2-normalised, flip TTA;
2. clusters them with k-means into K clusters;
3. takes as each cluster's center the real image nearest its centroid (as the
   released code does: ``argmin`` of ``kmeans.transform`` over the images),
   and keeps the *reliable* images: those whose cosine similarity to some
   center exceeds λ_t = ``lambda_start + (t - 1) * lambda_step``; a reliable
   image's label is its own k-means cluster (:func:`cluster_and_select`);
4. fine-tunes a fresh copy of the start model (``restart: original``, as
   released; or of the previous iteration's model, ``restart: previous``)
   with a new classifier (dropout 0.5, Dense K, kernel N(0, 0.001)) on the
   reliable images with softmax cross-entropy: one run of the shared
   training path (:func:`keras_reid.training.recipe.train`) into ``out/iter_t``.

Config sections:

=========  ====================================================================
data       :func:`load_pul_data`: ``target`` (one spec), ``sources`` (needed
           only when ``start.train`` trains the start model here)
start      ``model_path`` (a trained .keras model with an "embedding" output,
           e.g. an EmbAE run's embedding/model.keras) or ``train`` (a full
           shared-recipe config without ``data``, trained on data.sources into
           ``out/start``): exactly one of them
pul        :class:`PULOptions` (iterations, clusters, lambda_start,
           lambda_step, restart, features_output, n_init, dropout, classifier_std)
finetune   the shared recipe's ``batches``, ``optimizer``, ``schedule`` and
           ``train`` sections of every iteration's fit (the loss is softmax
           cross-entropy on "logits"; ``train.seed`` is the run's seed + t)
train      :class:`PULRunOptions` (seed, verbose)
=========  ====================================================================

The run folder holds config.yaml, start/ (when trained here),
pseudo_labels/iter_t.csv (every target train image's cluster, whether it was
selected, whether it is a center), iter_t/ (a complete run folder of the
shared path each) and results.csv/.md/.png: the start model's and every
iteration's Rank-1, Rank-1-nd, mAP and mAP-nd on the target's query/gallery
with the image and its mirror; results_ten_views.* the same with Hermans et
al.'s ten views (five crops and their mirrors). Both are written when the
last iteration is done.

Example::

    config = load_config("train_scripts/configs/pul_synth.yaml")
    results = train_pul(config, "runs/pul_synth")
"""

import copy
import logging
import os
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from keras_reid.config import (
    accepted_keys,
    call_section,
    check_run_dir,
    check_sections,
    prepare_run_dir,
    section_options,
)
from keras_reid.data.dataset import ReIDDataset
from keras_reid.errors import ReIDError
from keras_reid.fileio import write_text
from keras_reid.inference import extract_features
from keras_reid.layers.classification import ClassificationHead
from keras_reid.metrics.plots import plot_scores
from keras_reid.reporting import (
    SCORE_COLUMNS,
    brief_scores,
    evaluate_model,
    load_keras_model,
    score_table,
)
from keras_reid.training.optimizers import OPTIMIZERS
from keras_reid.training.recipe import (
    BATCH_KINDS,
    TrainingData,
    check_config,
    load_spec,
    train,
)
from keras_reid.training.runner import TrainOptions
from keras_reid.training.schedules import build_schedule

logger = logging.getLogger("keras_reid.training")

SECTIONS = ("data", "start", "pul", "finetune", "train")
FINETUNE_SECTIONS = ("batches", "optimizer", "schedule", "train")
RESTARTS = ("original", "previous")
RESULT_COLUMNS = ("model", "iteration", "threshold", "selected", "clusters_used", *SCORE_COLUMNS)
# PUL trains its classifier with softmax cross-entropy; the embedding takes no loss.
FINETUNE_LOSSES = {"logits": {"name": "softmax"}}


@dataclass
class PULOptions:
    """The ``pul`` section.

    Attributes:
        iterations: T, the clustering / fine-tuning rounds (>= 1). Default 25 (released code).
        clusters: K of k-means, about the number of target train identities
            (700 DukeMTMC-reID, 750 Market-1501 in the paper). Default 750.
        lambda_start: λ_1, the cosine similarity to a center an image must
            exceed to be reliable, in (-1, 1]. Default 0.85 (released code).
        lambda_step: λ grows by this much per iteration: λ_t = lambda_start
            + (t - 1) * lambda_step (every λ_t must stay in (-1, 1]).
            Default 0.0 (the released code's constant λ).
        restart: "original" (default, as released: every iteration fine-tunes
            a fresh copy of the start model) or "previous" (the previous
            iteration's model).
        features_output: the model output that is clustered and scored.
            Default "embedding".
        n_init: k-means restarts (scikit-learn's ``n_init``); 10 was
            scikit-learn's default when PUL was released. Default 10.
        dropout: the new classifier's dropout rate. Default 0.5 (released code).
        classifier_std: standard deviation of the new classifier's normal
            kernel initialisation (bias 0). Default 0.001 (released code).
    """

    iterations: int = 25
    clusters: int = 750
    lambda_start: float = 0.85
    lambda_step: float = 0.0
    restart: str = "original"
    features_output: str = "embedding"
    n_init: int = 10
    dropout: float = 0.5
    classifier_std: float = 0.001

    def __post_init__(self):
        if self.iterations < 1:
            raise ReIDError(
                f"pul.iterations must be >= 1. Received: pul.iterations={self.iterations}"
            )
        if self.clusters < 2:
            raise ReIDError(
                f"pul.clusters must be >= 2 (about the number of target train identities). "
                f"Received: pul.clusters={self.clusters}"
            )
        if self.n_init < 1:
            raise ReIDError(f"pul.n_init must be >= 1. Received: pul.n_init={self.n_init}")
        if self.restart not in RESTARTS:
            raise ReIDError(
                f"pul.restart must be one of {', '.join(RESTARTS)}. Received: {self.restart!r}"
            )
        for t in (1, self.iterations):
            value = self.threshold(t)
            if not -1.0 < value <= 1.0:
                raise ReIDError(
                    f"pul: λ_{t} = lambda_start + ({t} - 1) * lambda_step = {value:g} is outside "
                    "(-1, 1] (a cosine similarity); change pul.lambda_start or pul.lambda_step."
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ReIDError(f"pul.dropout must be in [0, 1). Received: {self.dropout!r}")
        if self.classifier_std <= 0:
            raise ReIDError(f"pul.classifier_std must be > 0. Received: {self.classifier_std!r}")

    def threshold(self, t):
        """λ_t, the reliability threshold of iteration ``t`` (1-based)."""
        return float(self.lambda_start + (t - 1) * self.lambda_step)


@dataclass
class PULRunOptions:
    """The ``train`` section.

    Attributes:
        seed: seeds k-means (seed + t at iteration t), the start model's fit
            (unless start.train.train.seed is given) and every iteration's fit
            (seed + t). Default 0.
        verbose: Keras' progress output (1 bars, 2 a line per epoch, 0 silent). Default 1.
    """

    seed: int = 0
    verbose: int = 1


@dataclass
class PULData:
    """The unlabelled target dataset and the labelled sources (may be empty)."""

    target: ReIDDataset
    sources: list


def load_pul_data(target, sources=None):
    """The ``data`` section: ``target`` (one spec), ``sources`` (one spec or a list, optional).

    A spec is ``"name[:root]"`` or ``{name, root, <parser options>}``, as in
    :func:`keras_reid.training.recipe.load_training_data`. The target's person
    ids are not used in training, only to score on its query/gallery.

    Example:
        >>> data = load_pul_data("market1501:/data/market", ["dukemtmc:/data/duke"])
    """
    if not target or not isinstance(target, (str, dict)):
        raise ReIDError(
            f"data.target must be one dataset spec (e.g. synth-b), the unlabelled target. "
            f"Received: {target!r}"
        )
    if isinstance(sources, (str, dict)):
        sources = [sources]
    return PULData(load_spec(target), [load_spec(spec) for spec in sources or []])


def cluster_and_select(features, clusters, threshold, seed=0, n_init=10):
    """PUL's clustering and reliable-sample selection of one iteration.

    The features are L2-normalised and clustered by k-means (the released
    code clusters ResNet-50's raw pool5 features and normalises only for the
    similarities; on unit vectors, k-means' euclidean distance ranks as the
    cosine that selects). Each cluster's center is the real sample nearest
    its centroid (``argmin`` over the samples of ``kmeans.transform``, as in
    the released code, not the centroid itself); a sample is reliable when
    its cosine similarity to at least one center is above ``threshold``, and
    its label is its own k-means cluster (not necessarily that center's).

    Args:
        features: float array [N, D] of N samples.
        clusters: K, the number of k-means clusters, 2 <= K <= N.
        threshold: λ, the cosine similarity a reliable sample must exceed.
        seed: k-means' random state. Default 0.
        n_init: k-means restarts. Default 10.

    Returns:
        ``(labels, selected, centers)``: int [N] cluster of every sample,
        bool [N] reliable or not, int [K] the index of each cluster's center sample.

    Example:
        >>> labels, selected, centers = cluster_and_select(features, 750, 0.85)
        >>> reliable_images, reliable_labels = table[selected], labels[selected]

    Fan, Zheng & Yang, "Unsupervised Person Re-identification: Clustering and
    Fine-tuning", ACM TOMM 2018, Sec. 3.2 (Eq. 4-5).
    """
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or not len(features):
        raise ReIDError(f"cluster_and_select: features must be [N, D]; got shape {features.shape}.")
    if not 2 <= clusters <= len(features):
        raise ReIDError(
            f"cluster_and_select: clusters must be in [2, {len(features)}] (the number of "
            f"samples). Received: clusters={clusters}"
        )
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.maximum(norms, 1e-12)
    kmeans = KMeans(n_clusters=clusters, n_init=n_init, random_state=seed).fit(unit)
    centers = np.argmin(kmeans.transform(unit), axis=0)
    # Clipped: rounding may put a center's similarity to itself a hair above 1.
    similarity = np.clip(unit @ unit[centers].T, -1.0, 1.0)  # [N, K]
    selected = (similarity > threshold).any(axis=1)
    return kmeans.labels_.astype(np.int64), selected, centers


def copy_weights(source, target, skip=("logits",)):
    """Copy the weights of ``source``'s layers into ``target``'s layers of the same name.

    Top-level layers are matched by name (a nested trunk is one layer), except
    the names in ``skip`` (the classifier, which PUL makes new every iteration).

    Returns:
        the names of the layers whose weights were copied.

    Raises:
        ReIDError: a layer of ``target`` that holds weights and is not skipped
            is missing from ``source`` or has weights of other shapes.

    Example:
        >>> copy_weights(start_model, finetune_model)  # all but "logits"
    """
    theirs = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in target.layers:
        if layer.name in skip or not layer.weights:
            continue
        if layer.name not in theirs:
            raise ReIDError(
                f"model {source.name!r} has no layer {layer.name!r} to copy into "
                f"{target.name!r}; start from a model of the same architecture."
            )
        mine = [tuple(w.shape) for w in layer.weights]
        other = [tuple(w.shape) for w in theirs[layer.name].weights]
        if mine != other:
            raise ReIDError(
                f"layer {layer.name!r}: {source.name!r} has weights {other}, {target.name!r} "
                f"{mine}; start from a model of the same architecture."
            )
        layer.set_weights(theirs[layer.name].get_weights())
        copied.append(layer.name)
    return copied


def pul_model(start, clusters, source=None, dropout=0.5, classifier_std=0.001, seed=0):
    """The start model's architecture with a new classifier over ``clusters`` pseudo-identities.

    The start model is cloned up to its "embedding" output (any classifier it
    had is dropped); a new :class:`~keras_reid.layers.ClassificationHead`
    "logits" (dropout, Dense ``clusters`` with a N(0, ``classifier_std``)
    kernel and zero bias, as the released code) is put on the embedding; every
    other weight is copied from ``source`` by layer name (:func:`copy_weights`).

    Args:
        start: the start model (a dict-output model with an "embedding" output).
        clusters: K, the classifier's outputs.
        source: the model the weights come from (default: ``start``).
        dropout: the classifier's dropout rate. Default 0.5.
        classifier_std: the kernel initialisation's standard deviation. Default 0.001.
        seed: the kernel initialisation's seed. Default 0.

    Example:
        >>> model = pul_model(start, 750)
        >>> sorted(model.output_names)
        ['embedding', 'logits']
    """
    clone = keras.models.clone_model(start)
    embedding = clone.output["embedding"]
    head = ClassificationHead(clusters, dropout=dropout, dtype="float32", name="logits")
    model = keras.Model(
        clone.input, {"embedding": embedding, "logits": head(embedding)}, name=start.name
    )
    kernel = np.random.default_rng(seed).normal(0.0, classifier_std, tuple(head.dense.kernel.shape))
    head.dense.kernel.assign(kernel.astype("float32"))
    copy_weights(source if source is not None else start, model)
    return model


def check_finetune(config):
    """Check the ``finetune`` sections before anything is written; returns them as a mapping."""
    section = section_options(config, "finetune")
    check_sections(section, FINETUNE_SECTIONS, where="config: finetune")
    fit_train = section_options(section, "train")
    for key, why in (
        ("seed", "the run's train.seed + t is used"),
        ("init_from", "each iteration starts from the start (or previous) model"),
    ):
        if key in fit_train:
            raise ReIDError(f"config: finetune.train.{key}: remove it; {why}.")
    call_section(TrainOptions, {"finetune.train": fit_train}, "finetune.train")
    batches = section_options(section, "batches")
    kind = batches.pop("kind", "pk")
    if kind not in ("pk", "mixed"):
        raise ReIDError(
            f"config: finetune.batches.kind must be pk or mixed (the reliable target images "
            f"are one labelled dataset). Received: {kind!r}"
        )
    fixed = ("tables", "image_size", "seed", "num_replicas", "start_step", "class_map", "with_meta")
    unknown = sorted(set(batches) - set(accepted_keys(BATCH_KINDS[kind], exclude=fixed)))
    if unknown:
        raise ReIDError(
            f"config: unknown key(s) {', '.join(f'finetune.batches.{k}' for k in unknown)}; "
            f"valid: kind, {', '.join(accepted_keys(BATCH_KINDS[kind], exclude=fixed))}."
        )
    schedule = section_options(section, "schedule")
    name = schedule.pop("name", None)
    try:
        build_schedule(name, 10, **schedule)
    except (ReIDError, TypeError, ValueError) as error:
        raise ReIDError(f"config: finetune.schedule: {error}") from None
    optimizer = section_options(section, "optimizer").get("name")
    if optimizer not in OPTIMIZERS.names():
        raise ReIDError(
            f"config: finetune.optimizer.name must be one of {', '.join(OPTIMIZERS.names())}. "
            f"Received: {optimizer!r}"
        )
    return section


def start_plan(config, data, options, out, resume):
    """Check the ``start`` section; returns ``(model or None, start-train config or None)``."""
    section = section_options(config, "start")
    unknown = sorted(set(section) - {"model_path", "train"})
    if unknown:
        raise ReIDError(
            f"config: unknown key(s) {', '.join(f'start.{k}' for k in unknown)}; valid keys of "
            "start: model_path, train (give one)."
        )
    # A null key is absent: a config inheriting start.train may set it to null.
    section = {key: value for key, value in section.items() if value is not None}
    if ("model_path" in section) == ("train" in section):
        raise ReIDError(
            "config: start needs exactly one of start.model_path (a trained .keras model with an "
            "embedding output) and start.train (a shared-recipe config trained on data.sources)."
        )
    if section.get("model_path"):
        path = os.path.abspath(os.path.expandvars(os.path.expanduser(str(section["model_path"]))))
        if not os.path.isfile(path):
            raise ReIDError(
                f"start.model_path: no file {path}; give a trained .keras model with an "
                "embedding output (e.g. an EmbAE run's embedding/model.keras)."
            )
        try:
            return load_keras_model(path), None
        except ReIDError as error:
            raise ReIDError(f"start.model_path: {error}") from None
    start = copy.deepcopy(section["train"])
    if not isinstance(start, dict):
        raise ReIDError(
            f"config: start.train must be a shared-recipe config mapping, not {start!r}."
        )
    if "data" in start:
        raise ReIDError(
            "config: start.train.data: the start model trains on data.sources; remove it."
        )
    if not data.sources:
        raise ReIDError(
            "config: start.train trains the start model on data.sources, which is empty; give "
            "data.sources (e.g. [synth-a]) or start.model_path instead."
        )
    fit_train = dict(start.get("train") or {})
    fit_train.setdefault("seed", options.seed)
    fit_train.setdefault("verbose", options.verbose)
    start["train"] = fit_train
    final = os.path.join(os.path.abspath(out), "start", "model.keras")
    if resume and os.path.isfile(final):
        return load_keras_model(final), start
    check_config(start, TrainingData(data.sources))
    return None, start


def pseudo_labels(model, target, options, t, seed, verbose):
    """Iteration ``t``'s table of every target train image: cluster, selected, center."""
    features = extract_features(
        model, target.train, tta="flip", output=options.features_output, progress=verbose == 1
    )
    threshold = options.threshold(t)
    labels, selected, centers = cluster_and_select(
        features, options.clusters, threshold, seed=seed, n_init=options.n_init
    )
    if not selected.any():
        raise ReIDError(
            f"PUL iteration {t}: no target image has a cosine similarity above λ_{t} = "
            f"{threshold:g} to a cluster center; lower pul.lambda_start (or pul.lambda_step)."
        )
    table = target.train[["path", "camid"]].copy()
    table["cluster"] = labels
    table["selected"] = selected
    table["center"] = np.isin(np.arange(len(table)), centers)
    return table


def reliable_dataset(target, table, t):
    """The reliable images of a pseudo-label table as a labelled dataset (pid = cluster)."""
    rows = table[table["selected"]]
    name = f"{target.name}-pul{t}"
    train_table = pd.DataFrame(
        {
            "path": rows["path"].to_numpy(),
            "pid": rows["cluster"].to_numpy(np.int64),
            "camid": rows["camid"].to_numpy(np.int64),
            "dataset": name,
        }
    )
    return ReIDDataset(name, train_table, target.query, target.gallery)


def score_row(model, target, name, t, threshold=None, table=None, tta="flip"):
    """A results row: the model's target scores (L2-normalised), selection counts.

    ``tta``: "flip" (the image and its mirror) or "five-crop-flip" (Hermans et
    al.'s ten views, as the EmbAE paper scores).
    """
    scores = evaluate_model(model, target, tta=tta, normalize=True, progress=False).iloc[0]
    selected = table[table["selected"]] if table is not None else None
    return {
        "model": name,
        "iteration": t,
        "threshold": threshold,
        "selected": None if table is None else len(selected),
        "clusters_used": None if table is None else int(selected["cluster"].nunique()),
        **{column: float(scores[column]) for column in SCORE_COLUMNS},
    }


def results_frame(rows):
    """The results rows as a DataFrame; the start row has no threshold or counts (empty cells)."""
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return frame.astype({"selected": "Int64", "clusters_used": "Int64"})


def write_results(results, out, title, name="results"):
    """{name}.csv, .md (changes over the start row) and .png, atomically."""
    write_text(os.path.join(out, f"{name}.csv"), results.to_csv(index=False))
    write_text(
        os.path.join(out, f"{name}.md"), score_table(results.set_index("model"), None, "start")
    )
    plot_scores(results, os.path.join(out, f"{name}.png"), SCORE_COLUMNS, title)


def train_pul(config, out, resume=False):
    """Run PUL from a config mapping; returns the results DataFrame.

    Args:
        config: the config mapping (see the module docstring).
        out: the run folder; refused if not empty unless ``resume``.
        resume: continue an interrupted run: a finished start model and
            finished iterations (``iter_t/model.keras``) are reused with their
            recorded pseudo-labels, the interrupted fit resumes.

    Returns:
        a DataFrame with columns model, iteration, threshold, selected,
        clusters_used, rank1, rank1_nd, mAP, mAP_nd: the row "start"
        (iteration 0) then "pul_t" per iteration.

    Example:
        >>> config = load_config("train_scripts/configs/pul_synth.yaml")
        >>> print(train_pul(config, "runs/pul_synth"))

    Fan, Zheng & Yang, "Unsupervised Person Re-identification: Clustering and
    Fine-tuning", ACM TOMM 2018 (Algorithm 1).
    """
    check_sections(config, SECTIONS)
    options = call_section(PULOptions, config, "pul")
    run = call_section(PULRunOptions, config, "train")
    finetune = check_finetune(config)
    data = call_section(load_pul_data, config, "data")
    target = data.target
    if options.clusters > len(target.train):
        raise ReIDError(
            f"pul.clusters={options.clusters} is more than the {len(target.train)} "
            f"{target.name} train images; use at most that many (about its identities)."
        )
    check_run_dir(out, config, resume=resume)
    start, start_config = start_plan(config, data, run, out, resume)
    out = prepare_run_dir(out, config, resume=resume)
    if start is None:
        logger.info("PUL: the start model on %s", ", ".join(d.name for d in data.sources))
        folder = os.path.join(out, "start")
        start = train(
            start_config,
            folder,
            resume=resume and os.path.isdir(folder),
            data=TrainingData(data.sources),
        )
    labels_dir = os.path.join(out, "pseudo_labels")
    os.makedirs(labels_dir, exist_ok=True)
    title = f"PUL -> {target.name}"
    rows = [score_row(start, target, "start", 0)]
    rows_ten = [score_row(start, target, "start", 0, tta="five-crop-flip")]
    logger.info("PUL start model on %s: %s", target.name, brief_scores(rows[0]))
    current = start
    for t in range(1, options.iterations + 1):
        folder = os.path.join(out, f"iter_{t}")
        labels_path = os.path.join(labels_dir, f"iter_{t}.csv")
        final = os.path.join(folder, "model.keras")
        threshold = options.threshold(t)
        if resume and os.path.isfile(labels_path):
            table = pd.read_csv(labels_path)
        else:
            table = pseudo_labels(current, target, options, t, run.seed + t, run.verbose)
            write_text(labels_path, table.to_csv(index=False))
        dataset = reliable_dataset(target, table, t)
        logger.info(
            "PUL iteration %d: λ = %g, %d reliable images of %d in %d clusters",
            t,
            threshold,
            len(dataset.train),
            len(table),
            dataset.train["pid"].nunique(),
        )
        if resume and os.path.isfile(final):
            model = keras.models.load_model(final)
        else:
            source = current if options.restart == "previous" else start
            fit_config = {
                **copy.deepcopy(finetune),
                "losses": FINETUNE_LOSSES,
                "train": {
                    "verbose": run.verbose,
                    **(finetune.get("train") or {}),
                    "seed": run.seed + t,
                },
            }

            def make_model(class_map, source=source, t=t):
                return pul_model(
                    start,
                    options.clusters,
                    source,
                    options.dropout,
                    options.classifier_std,
                    seed=run.seed + t,
                )

            model = train(
                fit_config,
                folder,
                resume=resume and os.path.isdir(folder),
                data=TrainingData([dataset]),
                make_model=make_model,
            )
        rows.append(score_row(model, target, f"pul_{t}", t, threshold, table))
        rows_ten.append(score_row(model, target, f"pul_{t}", t, threshold, table, "five-crop-flip"))
        logger.info("PUL iteration %d on %s: %s", t, target.name, brief_scores(rows[-1], rows[0]))
        current = model
    # Written once, at the end: results.csv marks a finished run (table scripts skip it).
    results = results_frame(rows)
    write_results(results_frame(rows_ten), out, f"{title}, ten views", "results_ten_views")
    write_results(results, out, title)
    return results
