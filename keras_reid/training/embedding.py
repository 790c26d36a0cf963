"""Metric embedding training: the first stage of EmbAE (after Hermans et al. 2017).

A MobileNet (or ResNet50) trunk with the TriNet head, trained with the
batch-hard soft-margin triplet loss on P×K batches drawn from one or several
labelled datasets (never mixed in a batch), Adam with a constant rate then
exponential decay. Every other paper's recipe reuses the pieces below.

Config sections (each maps onto one function's arguments):

=========  ==========================================================
data       :func:`load_training_data` (train specs, validation spec)
model      :func:`keras_reid.models.build_embedding_model`
loss       :func:`keras_reid.losses.get_loss` (``name`` + the loss's arguments)
batches    :func:`keras_reid.data.pipeline.pk_batches` (p, k, augment, cache)
schedule   :class:`keras_reid.training.schedules.ExponentialDecayAfter`
train      :class:`keras_reid.training.runner.TrainOptions`
=========  ==========================================================
"""

import logging
import os
from dataclasses import dataclass

import keras

from keras_reid.config import (
    call_section,
    check_run_dir,
    check_sections,
    prepare_run_dir,
    section_options,
)
from keras_reid.data import load_dataset, parse_spec
from keras_reid.data.pipeline import pk_batches, steps_per_epoch
from keras_reid.errors import ReIDError
from keras_reid.inference import model_image_size
from keras_reid.losses import (
    ActiveTripletFraction,
    MeanNegativeDistance,
    MeanPositiveDistance,
    get_loss,
)
from keras_reid.models import build_embedding_model
from keras_reid.training.runner import (
    RankingValidation,
    TrainOptions,
    fit,
    runtime,
    save_model,
    standard_callbacks,
)
from keras_reid.training.schedules import ExponentialDecayAfter

logger = logging.getLogger("keras_reid.training")

SECTIONS = ("data", "model", "loss", "batches", "schedule", "train")


@dataclass
class TrainingData:
    """Labelled source datasets and an optional validation dataset."""

    sources: list
    validation: object = None

    @property
    def tables(self):
        return [dataset.train for dataset in self.sources]


def _load(spec):
    """A dataset from ``"name[:root]"`` or ``{"name": ..., "root": ..., **options}``."""
    if isinstance(spec, dict):
        spec = dict(spec)
        if "name" not in spec:
            raise ReIDError(f"data: a dataset entry needs a 'name'; got {spec}.")
        name, root = spec.pop("name"), spec.pop("root", None)
        options = spec
    else:
        (name, root), options = parse_spec(spec), {}
    if root is not None:
        root = os.path.expandvars(os.path.expanduser(str(root)))
        if "$" in root:
            raise ReIDError(
                f"data: {name} root {root!r} names an environment variable that is not set; "
                "export it (e.g. REID_DATA=/data) or write the path in the config."
            )
    return load_dataset(name, root, **options)


def load_training_data(train, val=None):
    """The ``data`` section: ``train`` is a list of dataset specs, ``val`` one spec or null.

    A spec is ``"name[:root]"`` (``$VARS`` and ``~`` expanded in root) or a
    mapping ``{name, root, <parser options>}``.
    """
    if isinstance(train, (str, dict)):
        train = [train]
    if not train:
        raise ReIDError("data.train is empty; give at least one dataset, e.g. synth-a.")
    return TrainingData([_load(spec) for spec in train], _load(val) if val else None)


def triplet_metrics(margin="soft"):
    """The in-batch monitoring figures logged beside a triplet-family loss."""
    return [MeanPositiveDistance(), MeanNegativeDistance(), ActiveTripletFraction(margin)]


def build_loss(config):
    """The loss of the ``loss`` section: ``name`` plus the loss's own arguments."""
    options = section_options(config, "loss") or {"name": "batch_hard"}
    name = options.pop("name", "batch_hard")
    try:
        return get_loss(name, **options)
    except ReIDError:
        raise
    except (TypeError, ValueError) as error:
        raise ReIDError(f"config: loss {name!r} refused its arguments: {error}") from error


def as_output_dict(dataset, output="embedding"):
    """(images, pids) -> (images, {output: pids}) for a model with named outputs."""
    return dataset.map(lambda images, pids: (images, {output: pids}))


def _build(config, data, options, strategy):
    """The compiled model, steps per epoch and batch-stream factory of a config.

    Everything a config can get wrong is checked here, before a run writes anything.
    """
    with strategy.scope():
        model = call_section(build_embedding_model, config, "model")
        image_size = model_image_size(model)
        batches = config.get("batches") or {}
        steps = steps_per_epoch(data.tables, batches.get("p", 18), batches.get("k", 4))
        schedule = call_section(ExponentialDecayAfter, config, "schedule", steps_per_epoch=steps)
        loss = build_loss(config)
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss={"embedding": loss},
            metrics={"embedding": triplet_metrics(getattr(loss, "margin", "soft"))},
        )

    def make_batches(start_step):
        dataset = call_section(
            pk_batches,
            config,
            "batches",
            exclude=("with_meta",),
            tables=data.tables,
            image_size=image_size,
            seed=options.seed,
            num_replicas=strategy.num_replicas_in_sync,
            start_step=start_step,
        )
        return as_output_dict(dataset)

    make_batches(0)
    return model, steps, make_batches


def check_embedding_config(config, data=None):
    """Check a config as :func:`train_embedding` does before writing, writing nothing.

    For recipes that train an embedding later (EmbAE's stage 1), so that a
    typo there is refused before their run folder exists.
    """
    check_sections(config, SECTIONS)
    options = call_section(TrainOptions, config, "train")
    data = data or call_section(load_training_data, config, "data")
    with runtime(options) as strategy:
        _build(config, data, options, strategy)


def train_embedding(config, out, resume=False, data=None):
    """Train a metric embedding from a config mapping; returns the trained model.

    Writes into ``out``: config.yaml (the resolved config), log.csv,
    tensorboard/, checkpoints/epoch_NNNN.keras, model.keras (the final model),
    and backup/ while the run is unfinished. Every section is checked (data
    loaded, model, loss, schedule and batches built) before anything is
    written, so a typo leaves no run folder behind.

    Args:
        config: the config mapping (see the module docstring).
        out: the run folder; refused if not empty unless ``resume``.
        resume: continue an interrupted run in ``out`` from its last backup,
            with the same batches it would have had; a finished run (its
            model.keras written) is loaded, not trained again.
        data: a :class:`TrainingData` to use instead of the ``data`` section.

    Example:
        >>> config = load_config("train_scripts/configs/embedding_synth.yaml")
        >>> model = train_embedding(config, "runs/embedding_synth")
    """
    check_sections(config, SECTIONS)
    options = call_section(TrainOptions, config, "train")
    check_run_dir(out, config, resume=resume)
    final = os.path.join(os.path.abspath(out), "model.keras")
    if resume and os.path.isfile(final):
        logger.info("%s is a finished run (its model.keras exists): nothing to resume.", out)
        return keras.models.load_model(final)
    data = data or call_section(load_training_data, config, "data")
    with runtime(options) as strategy:
        model, steps, make_batches = _build(config, data, options, strategy)
        out = prepare_run_dir(out, config, resume=resume)
        validation = None
        if options.validate_every and data.validation is not None:
            validation = RankingValidation(
                data.validation.query, data.validation.gallery, every=options.validate_every
            )
        callbacks, state = standard_callbacks(out, options, steps, validation)
        start = state.restore(model)
        fit(model, make_batches, steps, options, callbacks, tables=data.tables, start_step=start)
        save_model(model, os.path.join(out, "model.keras"))
        state.finish()
    return model
