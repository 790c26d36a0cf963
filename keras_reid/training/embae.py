"""EmbAE: metric embedding autoencoders for unsupervised cross-dataset transfer.

Potapov et al., "Metric Embedding Autoencoders for Unsupervised Cross-Dataset
Transfer Learning". The recipe, as :func:`train_embae` runs it:

1. Stage 1: a metric embedding (trunk + f_emb) trained with the
   batch-hard soft-margin triplet loss on the labelled sources, by
   :func:`keras_reid.training.embedding.train_embedding` into ``out/embedding``
   (skipped when ``embedding.model_path`` names a trained one).
2. Feature cache: the frozen trunk's pooled features of every source train,
   target train, query and gallery image and of its flip
   (:mod:`keras_reid.training.feature_cache`).
3. Autoencoder pre-training on the sources, labels unused: θ_emb
   frozen, θ_nui and θ_dec trained to reconstruct the trunk features, with a
   common θ_nui, one per dataset or one per camera.
4. Unsupervised fine-tuning on the target's train split (camera
   ids used, person ids not), one variant per row of the paper's tables:

   ============  =========  ==============================================
   variant       θ_nui      fine-tuning
   ============  =========  ==============================================
   all           common     θ_emb, θ_nui, θ_dec together
   fix_nui       common     θ_nui frozen; θ_emb, θ_dec trained
   new_nui       common     θ_nui re-initialised and trained alone, then
                            θ_emb, θ_dec trained with it frozen
   dataset_nui   per        as new_nui, with a new θ_nui for the target
                 dataset    dataset
   cam_nui       per        as new_nui, with a new θ_nui for each target
                 camera     camera
   ============  =========  ==============================================

5. Scoring as in the paper's tables: Rank-1, mAP and their "-nd" forms (same-camera gallery
   items ignored) on the target's query/gallery, z_id averaged over the image
   and its flip and L2-normalised; the baseline row is the stage-1 embedding.

Datasets without camera ids (camid -1): fix_nui, new_nui and dataset_nui
still run; cam_nui cannot pick a θ_nui for such images. Asked for alone it
stops with a ReIDError saying why; among other variants it is skipped with a
logged warning, so that a long run still delivers the rows it can.

Every autoencoder stage is a ``model.fit`` of :func:`build_embae_model` on
cached features, what it may change chosen by ``trainable`` flags. Each epoch
visits every cached image once, as the image or its flip at random.

Config sections (each maps onto one function's or dataclass's arguments):

=============  ===============================================================
data           :func:`load_embae_data` (``sources``: list of specs, ``target``)
embedding      the stage-1 config of :func:`train_embedding` without ``data``
               (model, loss, batches, schedule, train), plus ``model_path``
autoencoder    :func:`build_embae_model` (nui_dim, decoder_hidden); the other
               sizes come from the stage-1 model
cache          :class:`CacheOptions` (dir, batch_size)
pretrain       :class:`StageOptions` of stage 3
finetune       :class:`StageOptions` of the θ_emb/θ_dec part of stage 4
finetune_nui   :class:`StageOptions` of the new-θ_nui part of stage 4
variants       a list of ``VARIANTS`` (default: all of them)
train          :class:`RunOptions` (seed, verbose, export_inference)
=============  ===============================================================

Outputs in ``out``: config.yaml; embedding/ (stage 1); cache/*.npz;
pretrain_{common,dataset,camera}/ and one folder per variant, each holding
model.keras (the autoencoder), groups.json (the θ_nui group of each dataset or
camera), log.csv and, with ``export_inference``, inference.keras (images +
group -> z_id, z_nui); results.csv, results.md and results.png.
"""

import copy
import json
import logging
import os
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
import yaml
from tqdm.auto import tqdm

from keras_reid.config import call_section, check_run_dir, check_sections, prepare_run_dir
from keras_reid.errors import ReIDError
from keras_reid.fileio import write_text
from keras_reid.metrics import evaluate, probe_accuracy
from keras_reid.models import build_embedding_model
from keras_reid.models.embae import (
    build_embae_inference_model,
    build_embae_model,
    copy_stage1_head,
    set_trainable,
    stage1_dimensions,
    with_nuisance_groups,
)
from keras_reid.reporting import SCORE_COLUMNS, load_keras_model, score_table
from keras_reid.training.embedding import (
    TrainingData,
    _load,
    check_embedding_config,
    train_embedding,
)
from keras_reid.training.feature_cache import cached_trunk_features
from keras_reid.training.runner import save_model

logger = logging.getLogger("keras_reid.training")

SECTIONS = (
    "data",
    "embedding",
    "autoencoder",
    "cache",
    "pretrain",
    "finetune",
    "finetune_nui",
    "variants",
    "train",
)
VARIANTS = ("all", "fix_nui", "new_nui", "dataset_nui", "cam_nui")
# How each variant holds θ_nui, i.e. which pre-trained autoencoder it starts from.
VARIANT_NUI = {
    "all": "common",
    "fix_nui": "common",
    "new_nui": "common",
    "dataset_nui": "dataset",
    "cam_nui": "camera",
}
NUI_MODES = ("common", "dataset", "camera")
SCORES = SCORE_COLUMNS


@dataclass
class StageOptions:
    """One autoencoder stage's optimisation (Adam on the reconstruction MSE).

    Attributes:
        epochs: passes over the cached images (each image once per epoch, as
            itself or its flip at random).
        learning_rate: Adam's constant learning rate.
        batch_size: images per step. Default 128.
    """

    epochs: int
    learning_rate: float
    batch_size: int = 128

    def __post_init__(self):
        self.learning_rate = float(self.learning_rate)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ReIDError(f"stage epochs must be an integer >= 0. Received: {self.epochs!r}")
        if self.learning_rate <= 0:
            raise ReIDError(f"learning_rate must be > 0. Received: {self.learning_rate!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ReIDError(f"batch_size must be an integer >= 2. Received: {self.batch_size!r}")


@dataclass
class CacheOptions:
    """The ``cache`` section: where trunk features are kept.

    Attributes:
        dir: the cache folder; None: ``out/cache``. A folder shared between
            runs is safe: a file from another trunk, weights or image size is
            rebuilt, never reused.
        batch_size: images per trunk forward pass while extracting. Default 128.
    """

    dir: str | None = None
    batch_size: int = 128


@dataclass
class RunOptions:
    """The ``train`` section.

    Attributes:
        seed: seeds Keras, NumPy, TensorFlow and the batch order of every stage. Default 0.
        verbose: Keras' progress output (1 bars, 2 a line per epoch, 0 silent). Default 1.
        export_inference: also save each variant as one images -> {embedding,
            nuisance} model (inference.keras). Default True.
    """

    seed: int = 0
    verbose: int = 1
    export_inference: bool = True


@dataclass
class EmbAEData:
    """The labelled source datasets and the unlabelled target dataset."""

    sources: list
    target: object


def load_embae_data(sources, target):
    """The ``data`` section: ``sources`` (one spec or a list), ``target`` (one spec).

    A spec is ``"name[:root]"`` or ``{name, root, <parser options>}``, as in
    :func:`keras_reid.training.embedding.load_training_data`.

    Example:
        >>> data = load_embae_data(["dukemtmc:/data/DukeMTMC-reID"], "market1501:/data/market")
    """
    if isinstance(sources, (str, dict)):
        sources = [sources]
    if not sources:
        raise ReIDError("data.sources is empty; give at least one labelled dataset, e.g. synth-a.")
    if not target:
        raise ReIDError("data.target is missing; give the unlabelled target dataset, e.g. synth-b.")
    loaded = [_load(spec) for spec in sources]
    names = [dataset.name for dataset in loaded]
    if len(set(names)) != len(names):
        raise ReIDError(f"data.sources names a dataset twice: {names}; give each once.")
    target = _load(target)
    if target.name in names:
        raise ReIDError(
            f"data.target {target.name} is also a source; the target is the unlabelled "
            "dataset to adapt to, so give another one."
        )
    return EmbAEData(loaded, target)


def group_keys(nui, tables):
    """The θ_nui groups of ``tables`` (a dict dataset name -> table), in index order.

    "common": one group ``["common"]``; "dataset": the dataset names;
    "camera": ``[dataset, camid]`` pairs, by dataset then camera.

    Raises:
        ReIDError: for "camera" when a table has images of unknown camera (camid -1).
    """
    if nui == "common":
        return ["common"]
    if nui == "dataset":
        return list(tables)
    if nui != "camera":
        raise ReIDError(f"unknown nui {nui!r}; expected one of: {', '.join(NUI_MODES)}.")
    keys = []
    for name, table in tables.items():
        unknown = int((table["camid"] < 0).sum())
        if unknown:
            raise ReIDError(
                f"{name}: {unknown} image(s) have no camera id (camid -1), so a θ_nui per "
                "camera cannot be chosen for them; use the common or per-dataset θ_nui "
                "(variants fix_nui, new_nui, dataset_nui)."
            )
        keys += [[name, int(camid)] for camid in sorted(table["camid"].unique())]
    return keys


def group_indices(nui, name, table, keys):
    """The group index of every row of ``table`` (dataset ``name``) under ``keys``: int32 [N]."""
    if nui == "common":
        return np.zeros(len(table), np.int32)
    if nui == "dataset":
        return np.full(len(table), keys.index(name), np.int32)
    lookup = {(dataset, camid): index for index, (dataset, camid) in enumerate(keys)}
    missing = sorted({c for c in table["camid"] if (name, int(c)) not in lookup})
    if missing:
        raise ReIDError(
            f"{name}: camera id(s) {missing} have no θ_nui group (groups: {keys}); "
            "the autoencoder was built for other cameras."
        )
    return np.array([lookup[(name, int(c))] for c in table["camid"]], np.int32)


def feature_batches(features, groups, batch_size=128, seed=0):
    """One epoch of autoencoder batches from cached features, re-shuffled every epoch.

    Each image appears once per epoch, as its original or flipped view at
    random (fresh draws every epoch): flip augmentation at no extra cost. The
    work is done per batch (a gather of rows, then of views), not per image,
    so that the pipeline costs little beside the few dense layers it feeds.

    Args:
        features: float32 [N, 2, F] (view 0 the image, view 1 its flip).
        groups: int32 [N] θ_nui group of each image.
        batch_size: images per batch; the last partial batch is dropped when
            N > batch_size, since a batch of a few rows gives BatchNormalization
            degenerate statistics. Default 128.
        seed: seed of the order and of the view choices. Default 0.

    Returns:
        a finite ``tf.data.Dataset`` of ``({"features", "group"}, {"reconstruction"})``.

    Example:
        >>> model.fit(feature_batches(cache.features, groups), epochs=10)
    """
    count = len(features)
    batch_size = min(batch_size, count)
    features = tf.constant(features, tf.float32)
    groups = tf.constant(np.asarray(groups, np.int32))
    rows = tf.data.Dataset.range(count).shuffle(count, seed=seed, reshuffle_each_iteration=True)
    rows = rows.batch(batch_size, drop_remainder=count > batch_size)
    views = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)
    views = views.batch(batch_size)

    def gather(rows, draws):
        both = tf.gather(features, rows)  # [B, 2, F]
        x = tf.gather(both, tf.cast(draws[: tf.shape(rows)[0]] % 2, tf.int32), batch_dims=1)
        return {"features": x, "group": tf.gather(groups, rows)}, {"reconstruction": x}

    return tf.data.Dataset.zip(rows, views).map(gather).prefetch(tf.data.AUTOTUNE)


class EpochBar(keras.callbacks.Callback):
    """A tqdm bar over a ``fit``'s epochs, showing the last epoch's loss."""

    def __init__(self, epochs, description=None):
        super().__init__()
        self.epochs, self.description = epochs, description

    def on_train_begin(self, logs=None):
        self.bar = tqdm(total=self.epochs, desc=self.description, unit="epoch", leave=True)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.4f}")
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def fit_stage(
    model,
    parts,
    stage,
    features,
    groups,
    seed,
    verbose,
    log_path=None,
    callbacks=(),
    description=None,
):
    """Train the ``parts`` of an EmbAE model ("emb", "nui", "dec") on reconstruction.

    The other parts are frozen (their BatchNormalization statistics too), the
    model re-compiled with a fresh Adam, and ``model.fit`` run for ``stage.epochs``
    on :func:`feature_batches`. A trained part's BatchNormalization runs in
    training mode, so training θ_emb on the target also re-estimates
    "embedding_bn"'s statistics there (on SynthReID that alone gives a small
    part of the fine-tuning gain; most comes from the reconstruction loss).

    Args:
        model: an EmbAE model from :func:`keras_reid.models.embae.build_embae_model`.
        parts: the parts trained, a subset of ("emb", "nui", "dec").
        stage: a :class:`StageOptions` (epochs, learning_rate, batch_size).
        features, groups: the cached features [N, 2, F] and θ_nui groups [N].
        seed: seed of the batches' order and views.
        verbose: Keras' progress output.
        log_path: a CSV file the epochs' losses are appended to. Default None.
        callbacks: further Keras callbacks. Default none.
        description: the progress bar's label (``verbose`` 1: one bar of
            epochs for the stage rather than a bar of steps per epoch).

    Example:
        >>> fit_stage(model, ("nui", "dec"), StageOptions(30, 1e-3), features, groups, 0, 1)
    """
    set_trainable(model, **{part: part in parts for part in ("emb", "nui", "dec")})
    model.compile(
        optimizer=keras.optimizers.Adam(stage.learning_rate), loss={"reconstruction": "mse"}
    )
    if stage.epochs == 0:
        return None
    callbacks = list(callbacks)
    if log_path is not None:
        callbacks.append(keras.callbacks.CSVLogger(log_path, append=True))
    if verbose == 1:
        # An autoencoder epoch is a fraction of a second: one bar per stage
        # (epochs, loss) says more than a bar of steps per epoch.
        callbacks.append(EpochBar(stage.epochs, description))
        verbose = 0
    return model.fit(
        feature_batches(features, groups, stage.batch_size, seed),
        epochs=stage.epochs,
        verbose=verbose,
        callbacks=callbacks,
        shuffle=False,  # feature_batches shuffles; Keras cannot shuffle a tf.data pipeline
    )


def embed(model, features, batch_size=4096):
    """z_id of cached features, averaged over the image and its flip (flip TTA): [N, D].

    The model is called directly in chunks rather than through ``predict``:
    a few dense layers on an array need no tf.data pipeline or tracing.
    """
    chunks = []
    for start in range(0, len(features), batch_size):
        views = features[start : start + batch_size]
        flat = views.reshape(-1, views.shape[-1])  # image 0 view 0, image 0 view 1, ...
        inputs = {"features": flat, "group": np.zeros(len(flat), np.int32)}  # z_id ignores it
        z_id = keras.ops.convert_to_numpy(model(inputs, training=False)["embedding"])
        chunks.append(z_id.reshape(len(views), views.shape[1], -1).mean(axis=1))
    return np.concatenate(chunks)


def score(model, query, gallery, query_table, gallery_table):
    """The paper's scores of ``model``'s z_id: L2-normalised, flip-averaged, euclidean."""
    row = evaluate(
        embed(model, query), embed(model, gallery), query_table, gallery_table, normalize=True
    )
    return {name: float(row[name].iloc[0]) for name in SCORES}


def results_markdown(results):
    """A markdown table of the scores, with the change over the baseline row in brackets."""
    return score_table(results.set_index("model"))


def plot_results(results, out_path, title="EmbAE"):
    """A grouped bar chart of the scores per model, written atomically."""
    from keras_reid.metrics.plots import _figure, _save

    figure = _figure(1.2 + 1.1 * len(results), 3.6)
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / len(SCORES)
    positions = np.arange(len(results))
    for index, name in enumerate(SCORES):
        axes.bar(positions + (index - 1.5) * width, results[name], width, label=name)
    axes.set_xticks(positions, results["model"])
    # Room above the highest bar for the legend; scores are fractions.
    axes.set_ylim(0, min(1.0, np.ceil(float(results[list(SCORES)].max().max()) * 13) / 10))
    axes.set_ylabel("score")
    axes.set_title(title)
    axes.legend(ncols=len(SCORES), fontsize="small", loc="upper left")
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, out_path)


def write_results(results, out, title="EmbAE"):
    """results.csv, results.md and results.png in ``out``, each written atomically."""
    write_text(os.path.join(out, "results.csv"), results.to_csv(index=False))
    write_text(os.path.join(out, "results.md"), results_markdown(results))
    plot_results(results, os.path.join(out, "results.png"), title)


def _check_variants(variants):
    if variants is None:
        return list(VARIANTS)
    if isinstance(variants, str):
        variants = [variants]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ReIDError(
            f"unknown variant(s) {', '.join(map(str, unknown)) or '(none given)'}; expected "
            f"a list of: {', '.join(VARIANTS)}."
        )
    return list(dict.fromkeys(variants))


def _runnable_variants(variants, data):
    """Drop cam_nui, with a warning, when a dataset lacks camera ids and others can run.

    cam_nui picks θ_nui by (dataset, camera), so every train image of the
    sources and the target needs a camera id; the other variants need none.
    """
    if "cam_nui" not in variants:
        return variants
    missing = [
        (dataset.name, int((dataset.train["camid"] < 0).sum()), len(dataset.train))
        for dataset in [*data.sources, data.target]
        if (dataset.train["camid"] < 0).any()
    ]
    if not missing:
        return variants
    reason = "cam_nui needs camera ids, but " + "; ".join(
        f"{count} of the {total} {name} train images have camid -1"
        for name, count, total in missing
    )
    if variants == ["cam_nui"]:
        raise ReIDError(f"{reason}; run fix_nui, new_nui or dataset_nui instead.")
    # Several variants asked for: the others do not need cameras, so a long
    # run still delivers them rather than failing on one row.
    kept = [v for v in variants if v != "cam_nui"]
    logger.warning("skipping %s; running %s.", reason, ", ".join(kept))
    return kept


def _stage1_plan(config, data, out, resume):
    """Check stage 1 before anything is written; return ``(model or None, section, path)``.

    The model is the one ``embedding.model_path`` names, or a finished stage 1
    being resumed; None means stage 1 is to be trained from ``section``, which
    has then been checked like :func:`train_embedding` checks it.
    """
    section = copy.deepcopy(config.get("embedding") or {})
    if not isinstance(section, dict):
        raise ReIDError(
            f"config: section embedding must be a mapping of keys, not {section!r}; see "
            "train_scripts/configs/embae_synth.yaml."
        )
    if "data" in section:
        raise ReIDError(
            "embedding.data: stage 1 trains on the top-level data.sources; remove embedding.data."
        )
    model_path = section.pop("model_path", None)
    if model_path:
        model_path = os.path.abspath(os.path.expandvars(os.path.expanduser(str(model_path))))
        if not os.path.isfile(model_path):
            raise ReIDError(
                f"embedding.model_path: no file {model_path}; give a trained stage-1 .keras "
                "model, or remove the key to train stage 1."
            )
        model = load_keras_model(model_path)
    else:
        model_path = os.path.join(os.path.abspath(out), "embedding", "model.keras")
        model = None
        if resume and os.path.isfile(model_path):
            model = keras.models.load_model(model_path)
        else:
            # Recorded in embedding/config.yaml; the datasets themselves are passed loaded.
            section["data"] = {"train": config["data"]["sources"], "val": config["data"]["target"]}
            check_embedding_config(section, TrainingData(data.sources, data.target))
    if model is not None and "model" in section:
        # Sizes only: weights are not needed to know the shapes a config gives.
        options = {**section["model"], "weights": None}
        where = "embedding.model"
        expected = stage1_dimensions(call_section(build_embedding_model, {where: options}, where))
        found = stage1_dimensions(model)
        if found[:2] != expected[:2]:
            raise ReIDError(
                f"stage-1 model {model_path} has input {found[0]} and {found[1]} trunk "
                f"features, but embedding.model gives input {expected[0]} and {expected[1]} "
                "trunk features; point model_path at a model trained with this config's trunk "
                "and image size."
            )
    return model, section, model_path


def _stage1(plan, data, out, resume):
    """The stage-1 embedding model: the planned one, or trained now into ``out/embedding``."""
    model, section, model_path = plan
    if model is not None:
        print(f"EmbAE stage 1: using the trained embedding {model_path}", flush=True)
        return model
    names = ", ".join(d.name for d in data.sources)
    print(f"EmbAE stage 1: metric embedding on {names}", flush=True)
    stage1_data = TrainingData(data.sources, data.target)
    return train_embedding(section, os.path.join(out, "embedding"), resume=resume, data=stage1_data)


def _stage_options(config, section):
    """A :class:`StageOptions` section; the paper gives no epochs or rates, so both are required."""
    options = config.get(section)
    if not isinstance(options, dict):
        raise ReIDError(
            f"config: section {section} is missing; give its epochs and learning_rate "
            "(see train_scripts/configs/embae_synth.yaml for chosen values and why)."
        )
    try:
        return call_section(StageOptions, config, section)
    except TypeError as error:
        raise ReIDError(f"config: {section}: {error}; give epochs and learning_rate.") from None


def _autoencoder_options(config):
    """The ``autoencoder`` section: the sizes that do not come from the stage-1 model."""
    options = dict(config.get("autoencoder") or {})
    valid = ("nui_dim", "decoder_hidden")
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ReIDError(
            f"config: unknown key(s) {', '.join(f'autoencoder.{k}' for k in unknown)}; valid keys "
            f"of autoencoder: {', '.join(valid)} (feature_dim, embedding_dim and hidden come "
            "from the stage-1 model)."
        )
    return options


def train_embae(config, out, resume=False, print_table=True):
    """Run the EmbAE recipe from a config mapping; returns the results DataFrame.

    Args:
        config: the config mapping (see the module docstring).
        out: the run folder; refused if not empty unless ``resume``.
        resume: continue an interrupted run: finished stages (their
            model.keras) are reused, the interrupted one is run again.
        print_table: print the results table at the end. Default True.

    Returns:
        a DataFrame with columns model, rank1, rank1_nd, mAP, mAP_nd: the row
        "baseline" (the stage-1 embedding) and one per variant run.

    Example:
        >>> config = load_config("train_scripts/configs/embae_synth.yaml")
        >>> print(train_embae(config, "runs/embae_synth"))
    """
    check_sections(config, SECTIONS)
    variants = _check_variants(config.get("variants"))
    options = call_section(RunOptions, config, "train")
    cache_options = call_section(CacheOptions, config, "cache")
    pretrain, finetune, finetune_nui = (
        _stage_options(config, name) for name in ("pretrain", "finetune", "finetune_nui")
    )
    autoencoder = _autoencoder_options(config)
    data = call_section(load_embae_data, config, "data")
    variants = _runnable_variants(variants, data)
    check_run_dir(out, config, resume=resume)
    plan = _stage1_plan(config, data, out, resume)
    out = prepare_run_dir(out, config, resume=resume)
    keras.utils.set_random_seed(options.seed)

    stage1 = _stage1(plan, data, out, resume)
    _, feature_dim, hidden, embedding_dim = stage1_dimensions(stage1)
    sizes = {"feature_dim": feature_dim, "embedding_dim": embedding_dim, "hidden": hidden}

    print("EmbAE: trunk features (each image and its flip) into the feature cache", flush=True)
    cache_dir = cache_options.dir or os.path.join(out, "cache")

    def cached(dataset, split):
        table = dataset.splits()[split]
        path = os.path.join(cache_dir, f"{dataset.name}_{split}.npz")
        return cached_trunk_features(
            stage1, table, path, cache_options.batch_size, progress=options.verbose == 1
        ).features

    sources = {d.name: (d.train, cached(d, "train")) for d in data.sources}
    target = data.target
    target_train = cached(target, "train")
    query, gallery = cached(target, "query"), cached(target, "gallery")

    def fresh(groups):
        model = build_embae_model(**sizes, groups=groups, **autoencoder)
        copy_stage1_head(stage1, model)
        return model

    rows = [{"model": "baseline", **score(fresh(1), query, gallery, target.query, target.gallery)}]
    print(f"EmbAE baseline (stage-1 embedding) on {target.name}: {_brief(rows[0])}", flush=True)

    pretrained = {}
    for step, nui in enumerate(dict.fromkeys(VARIANT_NUI[v] for v in variants)):
        folder = os.path.join(out, f"pretrain_{nui}")
        keys = group_keys(nui, {name: table for name, (table, _) in sources.items()})
        model = _finished(folder, resume)
        if model is None:
            model = fresh(len(keys))
            _pretrain(
                model, nui, keys, sources, pretrain, options, folder, options.seed + 100 + step
            )
            _save_stage(folder, model, nui, keys)
        pretrained[nui] = (model, keys)

    for step, variant in enumerate(variants):
        nui = VARIANT_NUI[variant]
        folder = os.path.join(out, variant)
        model = _finished(folder, resume, inference=options.export_inference)
        if model is None:
            seed = options.seed + 200 + 10 * step
            stages = (finetune, finetune_nui)
            model = _finetune(
                variant, pretrained[nui], target, target_train, stages, options, folder, seed
            )
            keys = _target_keys(nui, pretrained[nui][1], target)
            _save_stage(folder, model, nui, keys, stage1 if options.export_inference else None)
        rows.append(
            {"model": variant, **score(model, query, gallery, target.query, target.gallery)}
        )
        print(f"EmbAE {variant} on {target.name}: {_brief(rows[-1], rows[0])}", flush=True)

    results = pd.DataFrame(rows, columns=["model", *SCORES])
    sources_text = " + ".join(sources)
    write_results(results, out, f"EmbAE {sources_text} -> {target.name}")
    if print_table:
        print(results_markdown(results), flush=True)
    return results


def _finished(folder, resume, inference=False):
    """The model a finished stage saved in ``folder``, when resuming; else None.

    ``model.keras`` is the last file a stage writes (:func:`_save_stage`), so
    it marks a finished stage; with ``inference``, the stage also needs its
    inference.keras (a run of an older version may lack it: the stage is run again).
    """
    path = os.path.join(folder, "model.keras")
    if inference and not os.path.isfile(os.path.join(folder, "inference.keras")):
        return None
    if resume and os.path.isfile(path):
        print(f"EmbAE: reusing {path}", flush=True)
        return keras.models.load_model(path)
    return None


def _save_stage(folder, model, nui, keys, stage1=None):
    """groups.json (and, given ``stage1``, inference.keras), then model.keras, in ``folder``.

    model.keras comes last: a resumed run takes it as the sign of a finished stage.
    """
    os.makedirs(folder, exist_ok=True)
    groups = json.dumps({"nui": nui, "groups": keys}, indent=1) + "\n"
    write_text(os.path.join(folder, "groups.json"), groups)
    if stage1 is not None:
        inference = build_embae_inference_model(stage1, model)
        save_model(inference, os.path.join(folder, "inference.keras"))
    save_model(model, os.path.join(folder, "model.keras"))


def _pretrain(model, nui, keys, sources, stage, options, folder, seed):
    """Stage 3: θ_nui and θ_dec of ``model`` trained on the sources' cached features."""
    names = ", ".join(sources)
    print(
        f"EmbAE stage 3: autoencoder pre-training on {names} with nui={nui} "
        f"({len(keys)} θ_nui group(s)); θ_emb frozen",
        flush=True,
    )
    features = np.concatenate([features for _, features in sources.values()])
    groups = np.concatenate(
        [group_indices(nui, name, table, keys) for name, (table, _) in sources.items()]
    )
    os.makedirs(folder, exist_ok=True)
    log = os.path.join(folder, "log.csv")
    fit_stage(
        model,
        ("nui", "dec"),
        stage,
        features,
        groups,
        seed,
        options.verbose,
        log,
        description=f"pretrain {nui}",
    )


def _brief(row, baseline=None):
    parts = []
    for name in SCORES:
        text = f"{name} {row[name]:.3f}"
        if baseline is not None:
            text += f" ({row[name] - baseline[name]:+.3f})"
        parts.append(text)
    return ", ".join(parts)


def _target_keys(nui, source_keys, target):
    """The θ_nui groups after fine-tuning: the sources' plus the target's new ones."""
    if nui == "common":
        return source_keys
    return source_keys + group_keys(nui, {target.name: target.train})


def _finetune(variant, pretrained, target, features, stages, options, folder, seed):
    """Stage 4 for one variant: a fine-tuned copy of the pre-trained autoencoder."""
    finetune, finetune_nui = stages
    source_model, source_keys = pretrained
    nui = VARIANT_NUI[variant]
    keys = _target_keys(nui, source_keys, target)
    groups = group_indices(nui, target.name, target.train, keys)
    os.makedirs(folder, exist_ok=True)
    log = os.path.join(folder, "log.csv")
    heading = f"EmbAE stage 4 [{variant}] on {target.name} (unlabelled)"
    if variant in ("all", "fix_nui"):
        # A full copy: every variant starts from the same pre-trained weights.
        model = with_nuisance_groups(source_model, len(keys))
        parts = ("emb", "nui", "dec") if variant == "all" else ("emb", "dec")
        print(f"{heading}: training θ_{', θ_'.join(parts)}", flush=True)
        fit_stage(
            model,
            parts,
            finetune,
            features,
            groups,
            seed,
            options.verbose,
            log,
            description=variant,
        )
        return model
    # new_nui, dataset_nui, cam_nui: a new θ_nui for the target (the common
    # one re-initialised; or new groups beside the sources'), first fitted
    # alone so that it explains the target's nuisance, then frozen while θ_emb
    # and θ_dec adapt.
    model = with_nuisance_groups(source_model, len(keys), reset=variant == "new_nui")
    added = len(keys) - len(source_keys) if nui != "common" else 1
    print(f"{heading}: new θ_nui ({added} group(s)) trained, θ_emb and θ_dec frozen", flush=True)
    fit_stage(
        model,
        ("nui",),
        finetune_nui,
        features,
        groups,
        seed,
        options.verbose,
        log,
        description=f"{variant} θ_nui",
    )
    print(f"{heading}: θ_emb and θ_dec trained, new θ_nui frozen", flush=True)
    fit_stage(
        model,
        ("emb", "dec"),
        finetune,
        features,
        groups,
        seed + 1,
        options.verbose,
        log,
        description=f"{variant} θ_emb θ_dec",
    )
    return model


def camera_probe(run, split="train", steps=1000):
    """How much camera information a finished run's features and z_id hold, on its target.

    EmbAE's premise is that z_nui takes the camera nuisance so that z_id
    keeps identity. A linear probe (:func:`keras_reid.metrics.probe_accuracy`)
    predicts the camera from the frozen trunk's features, from the baseline
    z_id and from each fine-tuned variant's z_id, trained on the images of half
    of the target's identities and scored on the other half. The run's feature
    cache and models are read; only the probes are trained.

    Args:
        run: a finished EmbAE run folder.
        split: the target split probed ("train", "query" or "gallery"). Default "train".
        steps: training steps of each probe. Default 1000.

    Returns:
        a dict: "chance" (the largest camera's share of the held-out images),
        "trunk features", "baseline z_id" and "<variant> z_id" accuracies.

    Example:
        >>> camera_probe("runs/embae_synth")["cam_nui z_id"]
    """
    config_path = os.path.join(run, "config.yaml")
    if not os.path.isfile(config_path):
        raise ReIDError(f"{run}: no config.yaml; give an EmbAE run folder.")
    with open(config_path, encoding="utf-8") as stream:
        config = yaml.safe_load(stream) or {}
    target = call_section(load_embae_data, config, "data").target
    table = target.splits()[split]
    cache_path = os.path.join(run, "cache", f"{target.name}_{split}.npz")
    if not os.path.isfile(cache_path):
        raise ReIDError(f"no feature cache {cache_path}; finish the run first (--resume).")
    with np.load(cache_path) as cache:
        paths, features = list(cache["paths"]), cache["features"]
    if paths != list(table["path"]):
        raise ReIDError(
            f"{cache_path} lists other images than {target.name} {split}; the dataset "
            "changed since the run: run it again."
        )
    cameras = table["camid"].to_numpy()
    if (cameras < 0).any():
        raise ReIDError(f"{target.name} {split} has images without camera ids; nothing to probe.")
    pids = np.unique(table["pid"])
    held_out = np.random.default_rng(0).permutation(pids)[: len(pids) // 2]
    train = ~np.isin(table["pid"].to_numpy(), held_out)
    results = {"chance": float(np.bincount(cameras[~train]).max() / (~train).sum())}
    results["trunk features"] = probe_accuracy(features[:, 0], cameras, train, steps)
    for folder in ("pretrain_common", *VARIANTS):
        path = os.path.join(run, folder, "model.keras")
        if os.path.isfile(path):
            name = "baseline" if folder == "pretrain_common" else folder
            z_id = embed(keras.models.load_model(path), features)
            results[f"{name} z_id"] = probe_accuracy(z_id, cameras, train, steps)
    return results


__all__ = [
    "camera_probe",
    "CacheOptions",
    "EmbAEData",
    "RunOptions",
    "StageOptions",
    "VARIANTS",
    "embed",
    "feature_batches",
    "fit_stage",
    "group_indices",
    "group_keys",
    "load_embae_data",
    "results_markdown",
    "score",
    "train_embae",
    "write_results",
]
