"""EmbAE's autoencoder stages on cached trunk features: θ_nui groups, batches, fitting.

Every stage is a ``model.fit`` of :func:`keras_reid.models.embae.build_embae_model`
on cached features, what it may change chosen by ``trainable`` flags
(:func:`fit_stage`): pre-training (θ_nui, θ_dec) on the sources, then each
variant's fine-tuning on the target (:func:`finetune`).
"""

import contextlib
import json
import logging
import os

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from keras_reid.errors import ReIDError, one_line
from keras_reid.fileio import write_text
from keras_reid.models.embae import (
    build_embae_inference_model,
    set_trainable,
    with_nuisance_groups,
)
from keras_reid.training.embae.config import NUI_MODES, VARIANT_NUI
from keras_reid.training.state import load_saved_model, save_model

logger = logging.getLogger("keras_reid.training")


def group_keys(nui, tables):
    """The θ_nui groups of ``tables`` (a dict dataset label -> table), in index order.

    "common": one group ``["common"]``; "dataset": the dataset labels;
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
    """The group index of every row of ``table`` (labelled ``name``) under ``keys``: int32 [N]."""
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


def target_keys(nui, source_keys, target):
    """The θ_nui groups after fine-tuning: the sources' plus the target's new ones."""
    if nui == "common":
        return source_keys
    return source_keys + group_keys(nui, {target.label: target.train})


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


def pretrain(model, nui, keys, sources, stage, options, folder, seed):
    """Stage 3: θ_nui and θ_dec of ``model`` trained on the sources' cached features."""
    names = ", ".join(sources)
    logger.info(
        f"EmbAE stage 3: autoencoder pre-training on {names} with nui={nui} "
        f"({len(keys)} θ_nui group(s)); θ_emb frozen"
    )
    features = np.concatenate([features for _, features in sources.values()])
    groups = np.concatenate(
        [group_indices(nui, name, table, keys) for name, (table, _) in sources.items()]
    )
    log = _new_log(folder)
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


def finetune(variant, pretrained, target, features, stages, options, folder, seed):
    """Stage 4 for one variant: a fine-tuned copy of the pre-trained autoencoder."""
    finetune, finetune_nui = stages
    source_model, source_keys = pretrained
    nui = VARIANT_NUI[variant]
    keys = target_keys(nui, source_keys, target)
    groups = group_indices(nui, target.label, target.train, keys)
    log = _new_log(folder)
    heading = f"EmbAE stage 4 [{variant}] on {target.label} (unlabelled)"
    if variant in ("all", "fix_nui"):
        # A full copy: every variant starts from the same pre-trained weights.
        model = with_nuisance_groups(source_model, len(keys))
        parts = ("emb", "nui", "dec") if variant == "all" else ("emb", "dec")
        logger.info(f"{heading}: training θ_{', θ_'.join(parts)}")
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
    logger.info(f"{heading}: new θ_nui ({added} group(s)) trained, θ_emb and θ_dec frozen")
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
    logger.info(f"{heading}: θ_emb and θ_dec trained, new θ_nui frozen")
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


def finished_stage(folder, resume, nui, keys, inference=False):
    """The model a finished stage saved in ``folder``, when resuming; else None.

    ``model.keras`` is the last file a stage writes (:func:`save_stage`), so
    it marks a finished stage; with ``inference``, the stage also needs its
    inference.keras (a run of an older version may lack it: the stage is run again).
    A finished stage whose ``.keras`` files do not load whole, or whose
    groups.json does not record the θ_nui groups ``nui``, ``keys`` (a disk
    fault, a cut copy), is run again too, with a warning naming the file: its
    inputs are all at hand, and it takes seconds to minutes.
    """
    path = os.path.join(folder, "model.keras")
    if not resume or not os.path.isfile(path):
        return None
    inference_path = os.path.join(folder, "inference.keras")
    if inference and not os.path.isfile(inference_path):
        return None
    try:
        _check_groups(folder, nui, keys)
        if inference:
            load_saved_model(inference_path)
        model = load_saved_model(path)
    except ReIDError as error:
        logger.warning(f"EmbAE: {one_line(error)}; training the stage in {folder} again.")
        return None
    logger.info(f"EmbAE: reusing {path}")
    return model


def _groups(nui, keys):
    """What groups.json records: the θ_nui mode and its groups, in index order."""
    return {"nui": nui, "groups": keys}


def _check_groups(folder, nui, keys):
    """Raise a ReIDError when ``folder/groups.json`` does not record these θ_nui groups."""
    path = os.path.join(folder, "groups.json")
    try:
        with open(path, "rb") as stream:
            recorded = json.loads(stream.read())
    except (OSError, ValueError) as error:
        raise ReIDError(f"{path} is damaged ({error})") from None
    if recorded != _groups(nui, keys):
        raise ReIDError(f"{path} is damaged (it does not record the {nui} θ_nui groups {keys})")


def _new_log(folder):
    """``folder/log.csv``, emptied: a stage run again logs its epochs once."""
    os.makedirs(folder, exist_ok=True)
    log = os.path.join(folder, "log.csv")
    with contextlib.suppress(FileNotFoundError):
        os.remove(log)
    return log


def save_stage(folder, model, nui, keys, stage1=None):
    """groups.json (and, given ``stage1``, inference.keras), then model.keras, in ``folder``.

    model.keras comes last: a resumed run takes it as the sign of a finished stage.
    """
    os.makedirs(folder, exist_ok=True)
    write_text(os.path.join(folder, "groups.json"), json.dumps(_groups(nui, keys), indent=1) + "\n")
    if stage1 is not None:
        inference = build_embae_inference_model(stage1, model)
        save_model(inference, os.path.join(folder, "inference.keras"))
    save_model(model, os.path.join(folder, "model.keras"))
