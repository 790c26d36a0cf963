"""PUL's configuration: the config sections, their option classes, and checks.

See :mod:`keras_reid.training.pul` for the recipe these configure.
"""

import copy
import os
from dataclasses import dataclass

from keras_reid.config import accepted_keys, call_section, check_sections, section_options
from keras_reid.data.dataset import ReIDDataset
from keras_reid.errors import ReIDError
from keras_reid.serving.model_io import load_keras_model
from keras_reid.training.optimizers import OPTIMIZERS
from keras_reid.training.recipe import BATCH_KINDS, check_config
from keras_reid.training.runner import TrainOptions
from keras_reid.training.schedules import build_schedule
from keras_reid.training.training_data import TrainingData, load_datasets

SECTIONS = ("data", "start", "pul", "finetune", "train")
FINETUNE_SECTIONS = ("batches", "optimizer", "schedule", "train")
RESTARTS = ("original", "previous")
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
    :func:`keras_reid.training.training_data.load_training_data`. The target's person
    ids are not used in training, only to score on its query/gallery. A target
    that is also a source, or one source twice, is refused
    (:func:`~keras_reid.training.training_data.load_datasets`).

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
    sources, target, _ = load_datasets(sources or [], target, where="data.sources")
    return PULData(target, sources)


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
