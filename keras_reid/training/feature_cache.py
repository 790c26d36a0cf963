"""Trunk features computed once per image and per flip, kept on disk for EmbAE's autoencoder.

In every autoencoder stage of EmbAE (Potapov et al.) the trunk
is frozen: its global-average-pooled features are both the autoencoder's input
and its reconstruction target. Computing them once per image and per
horizontal flip turns an autoencoder epoch into a few dense layers over an
array, instead of a pass of the CNN over every image (see
``bench/embae_cache.py`` for the figures); choosing one of the two cached
views at random each epoch keeps the flip augmentation.

A cache file is a ``.npz`` holding ``features`` (float32 [N, V, F]; with the
default views "flip", view 0 the image and view 1 its mirror; with "ten",
Hermans et al.'s ten test-time views, see :data:`VIEW_SETS`), ``paths`` (the
table's image paths, in order) and ``meta`` (JSON): the trunk's architecture
and weights hashes, the input size, the feature size, the views and the paths'
hash. A file that does not match the model and the table in all of these is
rebuilt, and the reason logged: a cache is never reused across trunks, weights,
image sizes or views. Files are written to a
temporary name and renamed, so an interrupted run leaves no half cache.
"""

import hashlib
import json
import logging
import math
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
from keras_reid.data.images import IMAGE_ERRORS, explain_unreadable
from keras_reid.data.pipeline import inference_batches
from keras_reid.errors import ReIDError, check_one_of
from keras_reid.serving.extract import tta_views
from keras_reid.serving.model_io import model_image_size

logger = logging.getLogger("keras_reid.training")

CACHE_VERSION = 1
VIEWS = ("original", "flip")
# The views a cache can hold, in the order of its axis 1:
# - "flip": the image resized to the model's size, and its mirror;
# - "ten": Hermans et al.'s test-time augmentation (In Defense of the Triplet
#   Loss, Sec. 4.4; used by the EmbAE paper's scores, Sec. 5.1): the image
#   resized 12.5% larger (288x144 for a 256x128 model), five crops of the
#   model's size (centre, top-left, top-right, bottom-left, bottom-right),
#   then the mirror of each, in the same order.
_CROPS = ("center", "top_left", "top_right", "bottom_left", "bottom_right")
VIEW_SETS = {"flip": VIEWS, "ten": (*_CROPS, *(f"{crop}_flip" for crop in _CROPS))}
CROP_PAD = 0.125


@dataclass
class FeatureCache:
    """Trunk features of a table's images.

    Attributes:
        features: float32 [N, V, F]: the views of :data:`VIEW_SETS` (with "flip",
            ``features[:, 0]`` the images, ``[:, 1]`` their flips).
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
    if meta.get("views") != expected["views"]:
        return f"other views ({len(meta.get('views') or [])} per image)"
    return None


def check_views(views):
    """``views`` when it names one of :data:`VIEW_SETS`, else a ReIDError."""
    hint = "the image and its mirror, or Hermans et al.'s five crops and their mirrors"
    return check_one_of("views", views, tuple(VIEW_SETS), hint)


def load_size(image_size, views="flip"):
    """(height, width) the images are resized to before the views are cut: larger for "ten".

    ceil, not round: round(4.5) == 4 would leave a narrow model no room to crop.
    """
    if views == "flip":
        return tuple(image_size)
    return tuple(math.ceil(side * (1 + CROP_PAD)) for side in image_size)


# One traced function per stage-1 model and view set, shared by the caches of
# all its splits: a function per call would be traced again for every split.
_VIEW_FUNCTIONS = weakref.WeakKeyDictionary()


def _views_function(stage1_model, image_size, views):
    """A tf.function: images [B, h, w, 3] -> trunk features of every view [B, V, F]."""
    functions = _VIEW_FUNCTIONS.setdefault(stage1_model, {})
    if views not in functions:
        trunk = trunk_model(stage1_model)
        tta = "flip" if views == "flip" else "five-crop-flip"
        count = len(VIEW_SETS[views])
        loaded = load_size(image_size, views)

        @tf.function(input_signature=[tf.TensorSpec([None, *loaded, 3], tf.float32)])
        def all_views(images):
            stacked = tta_views(images, tta, image_size, CROP_PAD)  # [V, B, H, W, 3]
            flat = tf.reshape(stacked, [-1, *image_size, 3])
            features = tf.cast(trunk(flat, training=False), tf.float32)
            features = tf.reshape(features, [count, tf.shape(images)[0], -1])
            return tf.transpose(features, [1, 0, 2])

        functions[views] = all_views
    return functions[views]


def extract_trunk_features(stage1_model, paths, batch_size=128, progress=True, views="flip"):
    """Pooled trunk features of every test-time view of each image: float32 [N, V, F].

    Args:
        stage1_model: a stage-1 embedding model (trunk run in inference mode).
        paths: image paths (or a table with a ``path`` column).
        batch_size: images per forward pass (each pass holds V x as many views). Default 128.
        progress: show a progress bar. Default True.
        views: "flip" (V = 2: the image and its mirror; the default) or "ten"
            (V = 10: Hermans et al.'s five crops and their mirrors, see :data:`VIEW_SETS`).

    Example:
        >>> features = extract_trunk_features(model, market.query)  # [N, 2, 1024]
        >>> ten = extract_trunk_features(model, market.query, views="ten")  # [N, 10, 1024]
    """
    check_views(views)
    source = paths
    paths = list(paths["path"]) if hasattr(paths, "columns") else list(paths)
    if not paths:
        raise ReIDError("extract_trunk_features: no images given.")
    image_size = model_image_size(stage1_model)
    all_views = _views_function(stage1_model, image_size, views)
    batches = inference_batches(
        pd.DataFrame({"path": paths}), load_size(image_size, views), batch_size
    )
    chunks = []
    with tqdm(
        total=len(paths), unit="img", desc="trunk features", disable=not progress_wanted(progress)
    ) as bar:
        try:
            for images in batches:
                chunks.append(all_views(images).numpy())
                bar.update(len(chunks[-1]))
        except IMAGE_ERRORS as error:
            raise explain_unreadable(
                error, source if hasattr(source, "columns") else paths
            ) from error
    return np.concatenate(chunks)


def cached_trunk_features(stage1_model, table, path, batch_size=128, progress=True, views="flip"):
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
        views: the test-time views cached, "flip" (default) or "ten"
            (:data:`VIEW_SETS`); a file of other views is rebuilt.

    Returns:
        a :class:`FeatureCache`.

    Example:
        >>> cache = cached_trunk_features(model, market.train, "runs/x/cache/market_train.npz")
        >>> cache.features.shape
        (12936, 2, 1024)
    """
    check_views(views)
    paths = np.asarray(table["path"].astype(str).tolist(), dtype=str)
    if len(paths) == 0:
        raise ReIDError(f"feature cache {path}: the table is empty.")
    expected = {
        "version": CACHE_VERSION,
        "trunk": trunk_signature(stage1_model),
        "views": list(VIEW_SETS[views]),
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
    features = extract_trunk_features(stage1_model, table, batch_size, progress, views)
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
