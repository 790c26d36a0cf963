"""The training path every paper shares: one config, one ``model.fit``.

A paper is a model, a config and a results table: :func:`train` builds
everything a config names, checks it before the run folder is written, and
runs the fit with the crash-safe run state of :mod:`keras_reid.training.state`.

Config sections (each maps onto one library function's arguments):

=========  ====================================================================
data       :func:`load_training_data` (``train``: dataset specs, ``val``: one spec,
           ``target``: the unlabelled target domain of ``cross_domain`` batches)
model      :func:`keras_reid.models.build_model` (``name`` + the builder's
           arguments; ``num_classes`` is filled in from the data when a loss
           trains the ``logits`` output)
batches    ``kind: pk`` (one dataset per batch), ``mixed`` (P identities from
           the union of the train datasets) or ``cross_domain`` (a source P×K
           group and ``target_size`` images of ``data.target`` per batch), + the
           pipeline's arguments (p, k, augment, cache)
losses     ``{output: {name, weight, <loss arguments>}}``: compiled as a loss
           dict with loss weights (:func:`keras_reid.losses.get_loss`)
optimizer  :func:`keras_reid.training.optimizers.build_optimizer` (``name``,
           ``lr_multipliers`` by layer-name prefix, the optimizer's arguments)
schedule   :func:`keras_reid.training.schedules.build_schedule` (``name`` +
           arguments, optional linear warm-up)
train      :class:`keras_reid.training.runner.TrainOptions`
=========  ====================================================================

Labels: person ids become class indices 0..C-1 over the run's train
datasets, (dataset, pid) by (dataset, pid) (:class:`keras_reid.data.labels.ClassMap`),
written to the run folder as ``classes.json``. Every output with a loss gets
these labels: a metric loss only compares them, a softmax loss needs them in
[0, C).

Example::

    config = load_config("train_scripts/configs/msml_synth_msml.yaml")
    model = train(config, "runs/msml_synth")
"""

import logging
import os
from dataclasses import dataclass

import keras
import tensorflow as tf

from keras_reid.checks import is_number
from keras_reid.config import (
    call_section,
    check_run_dir,
    check_sections,
    prepare_run_dir,
    section_options,
)
from keras_reid.data.labels import ClassMap
from keras_reid.data.pipeline import steps_per_epoch
from keras_reid.data.samplers import cross_domain_batches, mixed_batches, pk_batches
from keras_reid.errors import ReIDError
from keras_reid.layers.gradient_reversal import reversal_layers
from keras_reid.losses import (
    ActiveTripletFraction,
    DomainAccuracy,
    DomainCrossEntropy,
    MeanNegativeDistance,
    MeanPositiveDistance,
    get_loss,
)
from keras_reid.models import MODELS
from keras_reid.serving.model_io import model_image_size
from keras_reid.training.distribute import barrier, check_same_step, run_folder
from keras_reid.training.optimizers import build_optimizer
from keras_reid.training.runner import (
    RankingValidation,
    TrainOptions,
    fit,
    runtime,
    save_model,
    standard_callbacks,
    start_from,
)
from keras_reid.training.schedules import build_schedule
from keras_reid.training.state import load_finished_model
from keras_reid.training.training_data import load_training_data, note_unlabelled_target

logger = logging.getLogger("keras_reid.training")

SECTIONS = ("data", "model", "batches", "losses", "optimizer", "schedule", "train")
BATCH_KINDS = {"pk": pk_batches, "mixed": mixed_batches, "cross_domain": cross_domain_batches}
# Outputs that serve inference or inspection (the embedding, SAL's attention
# maps): they may go without a loss. Every other output (logits, domain)
# exists only to be trained.
INFERENCE_OUTPUTS = ("embedding", "attention")
# Every worker of a multi-worker run builds the same global batch stream (it is
# stateless in the seed and the step); tf.distribute then splits each batch into
# the replicas' consecutive slices and each worker keeps its own (sharding by
# DATA). Sharding by files would give each worker other batches, not whole groups.
_SHARD_BY_DATA = tf.data.Options()
_SHARD_BY_DATA.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA


def triplet_metrics(margin="soft"):
    """The in-batch monitoring figures logged beside a triplet-family loss."""
    return [MeanPositiveDistance(), MeanNegativeDistance(), ActiveTripletFraction(margin)]


def _named(section, what, example):
    """``(name, arguments)`` of a ``{name: ..., <arguments>}`` section."""
    options = dict(section)
    name = options.pop("name", None)
    if not isinstance(name, str):
        raise ReIDError(f"config: {what} needs a name, e.g. {what}: {{name: {example}, ...}}.")
    return name, options


def _calling(what, given, function, *args, **kwargs):
    """``function(*args, **kwargs)``, a TypeError/ValueError becoming one line naming ``given``."""
    try:
        return function(*args, **kwargs)
    except ReIDError as error:
        raise ReIDError(f"config: {what}: {error}") from None
    except (TypeError, ValueError) as error:
        values = ", ".join(f"{what}.{k}={v!r}" for k, v in given.items()) or "no keys"
        raise ReIDError(f"config: {what} ({values}) was refused: {error}") from error


def build_losses(config, output_names):
    """The ``losses`` section: ``(losses, loss_weights, metrics)`` dicts keyed by output."""
    section = section_options(config, "losses")
    if not section:
        raise ReIDError(
            "config: section losses is empty; give a loss per trained output, e.g. "
            "losses: {embedding: {name: batch_hard, margin: soft}}."
        )
    losses, weights, metrics = {}, {}, {}
    for output, spec in section.items():
        where = f"losses.{output}"
        if output not in output_names:
            raise ReIDError(
                f"config: {where}: the model has no output {output!r} (outputs: "
                f"{', '.join(output_names)}); give losses for those outputs."
            )
        if not isinstance(spec, dict):
            raise ReIDError(
                f"config: {where} must be a mapping {{name, weight, ...}}, not {spec!r}."
            )
        name, options = _named(spec, where, "batch_hard")
        weight = options.pop("weight", 1.0)
        if not is_number(weight, minimum=0):
            raise ReIDError(f"config: {where}.weight must be a number >= 0. Received: {weight!r}")
        losses[output] = _calling(where, options, get_loss, name, **options)
        weights[output] = float(weight)
        if hasattr(losses[output], "margin"):  # a triplet-family loss on an embedding
            metrics[output] = triplet_metrics(losses[output].margin)
        elif isinstance(losses[output], DomainCrossEntropy):  # logged as <output>_accuracy
            metrics[output] = [DomainAccuracy(losses[output].from_logits)]
    untrained = [o for o in output_names if o not in losses and o not in INFERENCE_OUTPUTS]
    if untrained:
        raise ReIDError(
            f"config: the model's output(s) {', '.join(untrained)} have no loss; add "
            f"losses.{untrained[0]} (e.g. {{name: softmax}}) or build the model without it."
        )
    return losses, weights, metrics


def build_run_model(config, class_map, trains_logits):
    """The ``model`` section: ``name`` (a :data:`keras_reid.models.MODELS` entry) + arguments.

    ``num_classes`` comes from the data (the run's class map) when a loss
    trains the ``logits`` output; a config may not set it itself.
    """
    name, options = _named(section_options(config, "model"), "model", "trinet")
    if "num_classes" in options:
        raise ReIDError(
            "config: model.num_classes is filled in from the data (the train identities); "
            "remove it."
        )
    if trains_logits:
        options["num_classes"] = class_map.num_classes
    return call_section(MODELS.get(name), {"model": options}, "model")


def check_domains(kind, data):
    """The extra batch arguments of ``kind`` (the target's table), refusing a mismatched target."""
    if kind == "cross_domain":
        if data.target is None:
            raise ReIDError(
                "config: batches.kind cross_domain needs an unlabelled target domain; give "
                "data.target (e.g. target: synth-b), or use batches.kind pk."
            )
        return {"target": {data.target.label: data.target.train}}
    if data.target is not None:
        raise ReIDError(
            f"config: data.target {data.target.label} would be unused with batches.kind {kind}; "
            "set batches.kind: cross_domain to train on it, or remove data.target."
        )
    return {}


def check_reversal(model, losses):
    """Refuse a domain-classification loss on a model without a gradient reversal layer."""
    trained = [output for output, loss in losses.items() if isinstance(loss, DomainCrossEntropy)]
    if trained and not reversal_layers(model):
        raise ReIDError(
            f"config: losses.{trained[0]} trains a domain classifier, but model {model.name!r} "
            "has no GradientReversal layer: the features would learn to tell the domains apart; "
            "build the model with one (dien: domain_classifier: true)."
        )


@dataclass
class Prepared:
    """What a config builds: the compiled model, the class map and the batch stream."""

    model: keras.Model
    class_map: ClassMap
    steps_per_epoch: int
    make_batches: object  # start_step -> tf.data.Dataset of (images, {output: labels})


def prepare(config, data, options, strategy, make_model=None):
    """Build and compile everything a config names; checks it all, writes nothing.

    ``make_model``: None (the ``model`` section builds the model), or a function
    ``class_map -> keras.Model`` giving the uncompiled model instead (a recipe
    that derives each fit's model from another model, as PUL's rounds do).
    """
    class_map = ClassMap.from_tables(data.tables)
    losses_section = section_options(config, "losses")
    batches = section_options(config, "batches")
    kind = batches.pop("kind", "pk")
    if kind not in BATCH_KINDS:
        raise ReIDError(
            f"config: batches.kind must be one of {', '.join(BATCH_KINDS)}. Received: {kind!r}"
        )
    extra = check_domains(kind, data)
    steps = steps_per_epoch(data.tables, batches.get("p", 18), batches.get("k", 4))
    with strategy.scope():
        if make_model is None:
            model = build_run_model(config, class_map, "logits" in losses_section)
        else:
            model = make_model(class_map)
        if options.init_from is not None:
            start_from(model, options.init_from)
        losses, weights, metrics = build_losses(config, list(model.output_names))
        check_reversal(model, losses)
        name, args = _named(section_options(config, "schedule"), "schedule", "piecewise")
        schedule = _calling("schedule", args, build_schedule, name, steps, **args)
        name, args = _named(section_options(config, "optimizer"), "optimizer", "adam")
        optimizer = _calling("optimizer", args, build_optimizer, model, schedule, name, **args)
        model.compile(optimizer=optimizer, loss=losses, loss_weights=weights, metrics=metrics)
    image_size = model_image_size(model)
    # Keras wants a target for every output of a dict-output model, with a
    # loss or not (the Cls row leaves "embedding" without one): each gets
    # the class labels, which a loss may use or ignore.
    outputs = list(model.output_names)

    def make_batches(start_step):
        dataset = call_section(
            BATCH_KINDS[kind],
            {"batches": batches},
            "batches",
            exclude=("with_meta",),
            tables=data.tables,
            image_size=image_size,
            seed=options.seed,
            num_replicas=strategy.num_replicas_in_sync,
            start_step=start_step,
            class_map=class_map,
            **extra,
        )
        dataset = dataset.map(lambda images, labels: (images, {o: labels for o in outputs}))
        return dataset.with_options(_SHARD_BY_DATA)

    # Built now, so that the batches section is checked before the run folder
    # is written; a fresh run then trains on this very stream (a cached one
    # is decoded once, not twice).
    checked = {0: make_batches(0)}

    def batches_from(start_step):
        return checked.pop(start_step) if start_step in checked else make_batches(start_step)

    return Prepared(model, class_map, steps, batches_from)


def check_recorded_classes(path, class_map, sources):
    """Refuse to resume a run whose recorded classes.json is not the data's class map.

    A run recorded before two datasets of one loader were told apart labels
    its classes by loader name (``["market1501", 2]``): it resumes when each
    class is still the same (name, pid), i.e. no pid of two such datasets was
    merged into one class, and is refused otherwise (its model and labels do
    not fit the data's map).
    """
    recorded = ClassMap.load(path)
    name_of = {dataset.label: dataset.name for dataset in sources}
    by_name = [(name_of.get(label, label), pid) for label, pid in class_map.identities]
    if recorded != class_map and recorded.identities != by_name:
        raise ReIDError(
            f"--resume: {path} records {recorded!r}, but the data give {class_map!r} (the "
            "datasets changed, or the run predates telling two datasets of one loader "
            "apart); start a new run folder."
        )


def check_config(config, data=None):
    """Check a config as :func:`train` does before writing, writing nothing.

    For recipes that train later (EmbAE's stage 1), so that a typo there is
    refused before their run folder exists.
    """
    check_sections(config, SECTIONS)
    options = call_section(TrainOptions, config, "train")
    data = data or call_section(load_training_data, config, "data")
    with runtime(options) as strategy:
        prepare(config, data, options, strategy)


def train(config, out, resume=False, data=None, make_model=None):
    """Train the model a config names; returns it.

    Writes into ``out``: config.yaml (the resolved config), classes.json (class
    index -> (dataset, pid)), log.csv, tensorboard/, checkpoints/epoch_NNNN.keras,
    model.keras (the final model), and backup/ while the run is unfinished.
    Every section is checked (data loaded, model, losses, optimizer, schedule
    and batches built) before anything is written. In a multi-worker run
    (``train.distribute: multi_worker``) only the chief writes ``out``; each
    other worker writes ``out/workers/<index>`` (see
    :func:`~keras_reid.training.distribute.run_folder`).

    Args:
        config: the config mapping (see the module docstring).
        out: the run folder; refused if not empty unless ``resume``.
        resume: continue an interrupted run in ``out`` from its last backup,
            with the batches it would have had; a finished run (its
            model.keras written) is loaded, not trained again.
        data: a :class:`~keras_reid.training.training_data.TrainingData` to use instead of
            the ``data`` section.
        make_model: None, or a function ``class_map -> keras.Model`` building
            the model instead of the ``model`` section (see :func:`prepare`).

    Example:
        >>> model = train(load_config("train_scripts/configs/msml_synth_msml.yaml"), "runs/msml")
    """
    check_sections(config, SECTIONS)
    options = call_section(TrainOptions, config, "train")
    out, chief = run_folder(out, options)
    check_run_dir(out, config, resume=resume)
    final = os.path.join(os.path.abspath(out), "model.keras")
    if resume and os.path.isfile(final):
        model = load_finished_model(final)
        logger.info("%s is a finished run (its model.keras exists): nothing to resume.", out)
        return model
    data = data or call_section(load_training_data, config, "data")
    with runtime(options) as strategy:
        prepared = prepare(config, data, options, strategy, make_model)
        model, steps = prepared.model, prepared.steps_per_epoch
        if chief:
            out = prepare_run_dir(out, config, resume=resume)
            note_unlabelled_target(data.target)
        # A worker's folder is inside the chief's: it is made once the chief
        # has checked and made its own (which an empty-folder check would refuse).
        barrier(strategy)
        if not chief:
            out = prepare_run_dir(out, config, resume=resume)
        classes = os.path.join(out, "classes.json")
        if resume and os.path.isfile(classes):
            check_recorded_classes(classes, prepared.class_map, data.sources)
        prepared.class_map.save(classes)
        validation = None
        if options.validate_every and data.validation is not None:
            validation = RankingValidation(
                data.validation.query, data.validation.gallery, every=options.validate_every
            )
        callbacks, state = standard_callbacks(out, options, steps, validation, chief=chief)
        with strategy.scope():  # the optimizer's variables may be built here
            start = state.restore(model)
        check_same_step(strategy, start)
        fit(
            model,
            prepared.make_batches,
            steps,
            options,
            callbacks,
            tables=data.tables,
            start_step=start,
        )
        save_model(model, final)
        state.finish()
    return model
