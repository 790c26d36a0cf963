"""Trunk features computed once per image and per flip, kept on disk for EmbAE's autoencoder.

In every autoencoder stage of EmbAE (Potapov et al.) the trunk
is frozen: its global-average-pooled features are both the autoencoder's input
and its reconstruction target. Computing them once per image and per
horizontal flip turns an autoencoder epoch into a few dense layers over an
array, instead of a pass of the CNN over every image (see
``bench/embae_cache.py`` for the figures); choosing one of the two cached
views at random each epoch keeps the flip augmentation.

A cache file is a ``.npz`` holding ``features`` (float32 [N, 2, F]: view 0 the
image, view 1 its mirror), ``paths`` (the table's image paths, in order) and
``meta`` (JSON): the trunk's architecture and weights hashes, the input size,
the feature size and the paths' hash. A file that does not match the model
and the table in all of these is rebuilt, and the reason logged: a cache is
never reused across trunks, weights or image sizes. Files are written to a
temporary name and renamed, so an interrupted run leaves no half cache.
"""

import hashlib
import json
import logging
import os
import weakref
import zipfile
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from keras_reid._quiet import progress_wanted
from keras_reid.data.pipeline import IMAGE_ERRORS, explain_unreadable, inference_batches
from keras_reid.errors import ReIDError
from keras_reid.inference import model_image_size, tta_views

logger = logging.getLogger("keras_reid.training")

CACHE_VERSION = 1
VIEWS = ("original", "flip")


@dataclass
class FeatureCache:
    """Trunk features of a table's images.

    Attributes:
        features: float32 [N, 2, F]; ``features[:, 0]`` the images, ``[:, 1]`` their flips.
        paths: the images' paths, in the table's order.
        meta: what the features were computed with (see :func:`trunk_signature`).
        path: the ``.npz`` file.
        built: True when the features were extracted by this call, False when read.
    """

    features: np.ndarray
    paths: np.ndarray
    meta: dict
    path: str
    built: bool


def trunk_model(stage1_model):
    """images -> the pooled trunk features ("trunk_features") of a stage-1 embedding model."""
    try:
        features = stage1_model.get_layer("trunk_features").output
    except ValueError:
        raise ReIDError(
            f"model {stage1_model.name!r} has no layer 'trunk_features'; expected a stage-1 "
            "model from keras_reid.models.build_embedding_model."
        ) from None
    return keras.Model(stage1_model.inputs, features, name="trunk_features_model")


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _sha256(chunks):
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def trunk_signature(stage1_model):
    """What a trunk's features depend on: architecture, weights, input and feature size.

    The architecture hash covers each layer's class and configuration without
    its name (Keras numbers unnamed layers per process, so names would differ
    between two builds of the same trunk); the weights hash covers every
    weight of the trunk, batch-norm statistics included.
    """
    trunk = stage1_model.get_layer("trunk")
    layers = []
    for layer in _leaf_layers(trunk):
        config = {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable")}
        layers.append([type(layer).__name__, config])
    architecture = json.dumps(layers, sort_keys=True, default=str).encode("utf-8")
    weights = [np.ascontiguousarray(keras.ops.convert_to_numpy(w)) for w in trunk.weights]
    return {
        "trunk": trunk.name,
        "architecture_sha256": _sha256([architecture]),
        "weights_sha256": _sha256(w.tobytes() for w in weights),
        "input_size": list(model_image_size(stage1_model)),
        "feature_dim": int(stage1_model.get_layer("trunk_features").output.shape[-1]),
    }


def paths_hash(paths):
    """sha256 of the newline-joined paths (the table's identity, in order)."""
    return _sha256(["\n".join(map(str, paths)).encode("utf-8")])


def _read(path):
    """(features, paths, meta) of a cache file, or a reason why it cannot be used."""
    if not os.path.isfile(path):
        return None, "no cache yet"
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return (data["features"], data["paths"], meta), None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        return None, f"unreadable ({type(error).__name__}: {str(error).splitlines()[0]})"


def _mismatch(meta, expected):
    """Why a cache's metadata does not fit, or None."""
    if meta.get("version") != expected["version"]:
        return f"cache format {meta.get('version')} (now {expected['version']})"
    found, wanted = meta.get("trunk", {}), expected["trunk"]
    if found.get("input_size") != wanted["input_size"]:
        return f"image size {found.get('input_size')} (the model takes {wanted['input_size']})"
    if found.get("architecture_sha256") != wanted["architecture_sha256"]:
        return f"another trunk ({found.get('trunk')}, {found.get('feature_dim')} features)"
    if found.get("weights_sha256") != wanted["weights_sha256"]:
        return "other trunk weights"
    if meta.get("paths_sha256") != expected["paths_sha256"]:
        return "another list of images"
    return None


# One traced function per stage-1 model, shared by the caches of all its
# splits: a function per call would be traced again for every split.
_BOTH_VIEWS = weakref.WeakKeyDictionary()


def _both_views(stage1_model, image_size):
    """A tf.function: images [B, H, W, 3] -> trunk features of each and its flip [B, 2, F]."""
    if stage1_model not in _BOTH_VIEWS:
        trunk = trunk_model(stage1_model)

        @tf.function(input_signature=[tf.TensorSpec([None, *image_size, 3], tf.float32)])
        def both_views(images):
            views = tta_views(images, "flip")  # [2, B, H, W, 3]
            flat = tf.reshape(views, [-1, *image_size, 3])
            features = tf.cast(trunk(flat, training=False), tf.float32)
            features = tf.reshape(features, [2, tf.shape(images)[0], -1])
            return tf.transpose(features, [1, 0, 2])

        _BOTH_VIEWS[stage1_model] = both_views
    return _BOTH_VIEWS[stage1_model]


def extract_trunk_features(stage1_model, paths, batch_size=128, progress=True):
    """Pooled trunk features of each image and of its horizontal flip: float32 [N, 2, F].

    Args:
        stage1_model: a stage-1 embedding model (trunk run in inference mode).
        paths: image paths (or a table with a ``path`` column).
        batch_size: images per forward pass (each pass holds 2x as many views). Default 128.
        progress: show a progress bar. Default True.

    Example:
        >>> features = extract_trunk_features(model, market.query)  # [N, 2, 1024]
    """
    source = paths
    paths = list(paths["path"]) if hasattr(paths, "columns") else list(paths)
    if not paths:
        raise ReIDError("extract_trunk_features: no images given.")
    image_size = model_image_size(stage1_model)
    both_views = _both_views(stage1_model, image_size)
    batches = inference_batches(pd.DataFrame({"path": paths}), image_size, batch_size)
    chunks = []
    with tqdm(
        total=len(paths), unit="img", desc="trunk features", disable=not progress_wanted(progress)
    ) as bar:
        try:
            for images in batches:
                chunks.append(both_views(images).numpy())
                bar.update(len(chunks[-1]))
        except IMAGE_ERRORS as error:
            raise explain_unreadable(
                error, source if hasattr(source, "columns") else paths
            ) from error
    return np.concatenate(chunks)


def cached_trunk_features(stage1_model, table, path, batch_size=128, progress=True):
    """The trunk features of ``table``'s images from ``path``, (re)built when they do not fit.

    The file is reused only if it was made by a trunk with the same
    architecture, the same weights and the same input size, from the same
    images in the same order; otherwise it is rebuilt and the reason logged.

    Args:
        stage1_model: the stage-1 embedding model whose trunk makes the features.
        table: a dataset table (its ``path`` column, in order).
        path: the ``.npz`` cache file; its folder is created.
        batch_size: images per forward pass. Default 128.
        progress: show a progress bar while extracting. Default True.

    Returns:
        a :class:`FeatureCache`.

    Example:
        >>> cache = cached_trunk_features(model, market.train, "runs/x/cache/market_train.npz")
        >>> cache.features.shape
        (12936, 2, 1024)
    """
    paths = np.asarray(table["path"].astype(str).tolist(), dtype=str)
    if len(paths) == 0:
        raise ReIDError(f"feature cache {path}: the table is empty.")
    expected = {
        "version": CACHE_VERSION,
        "trunk": trunk_signature(stage1_model),
        "views": list(VIEWS),
        "count": len(paths),
        "paths_sha256": paths_hash(paths),
    }
    found, reason = _read(path)
    if found is not None:
        reason = _mismatch(found[2], expected)
        if reason is None and not (found[0].shape[0] == len(paths) and found[0].ndim == 3):
            reason = f"features of shape {found[0].shape} for {len(paths)} images"
        if reason is None:
            logger.info("feature cache: reusing %s (%d images)", path, len(paths))
            return FeatureCache(found[0], found[1], found[2], path, built=False)
        logger.warning("feature cache: rebuilding %s: it was made with %s", path, reason)
    else:
        logger.info("feature cache: building %s (%s)", path, reason)
    features = extract_trunk_features(stage1_model, table, batch_size, progress)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "wb") as stream:
            np.savez(stream, features=features, paths=paths, meta=np.array(json.dumps(expected)))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return FeatureCache(features, paths, expected, path, built=True)
