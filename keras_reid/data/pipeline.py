"""The tf.data plumbing every pipeline shares, the epoch length and inference batches.

Every pipeline yields float32 RGB images in the raw 0-255 range, resized to
``image_size = (height, width)``: the models carry their own preprocessing.
Rows of one or several tables are decoded (or cached decoded) and batched
here; which rows make a training batch is :mod:`keras_reid.data.samplers`'
business, and reading one image :mod:`keras_reid.data.images`'.

- :func:`steps_per_epoch`: the number of P×K batches in one epoch.
- :func:`inference_batches`: every row once, in order, for embedding.
"""

import logging

import numpy as np
import tensorflow as tf

from keras_reid.checks import is_int
from keras_reid.data.dataset import named_tables
from keras_reid.data.images import IMAGE_ERRORS, explain_unreadable, load_image
from keras_reid.errors import ReIDError

logger = logging.getLogger("keras_reid.data")

AUTOTUNE = tf.data.AUTOTUNE


def _check_image_size(image_size):
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        height = width = 0
    if height < 1 or width < 1:
        raise ReIDError(
            f"image_size is (height, width), two positive integers. Received: "
            f"image_size={image_size!r}"
        )
    return height, width


def _positive(**values):
    for name, value in values.items():
        if not is_int(value, minimum=1, numpy=True):
            raise ReIDError(f"{name} must be a positive integer. Received: {name}={value!r}")


def _non_negative(**values):
    for name, value in values.items():
        if not is_int(value, minimum=0, numpy=True):
            raise ReIDError(f"{name} must be an integer >= 0. Received: {name}={value!r}")


class _Rows:
    """The tables concatenated: per-row paths and labels as constant tensors.

    With ``classes`` (a class index per row), the labels are those instead of the pids.
    """

    def __init__(self, named, pids=None, classes=None):
        tables = [table for _, table in named]
        self.sizes = np.array([len(t) for t in tables])
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.paths = np.concatenate([t["path"].astype(str).to_numpy() for t in tables])
        pid_values = np.concatenate([t["pid"].to_numpy() for t in tables]).astype(np.int32)
        if pids is not None:
            pid_values = np.full_like(pid_values, pids)
        self.pids = tf.constant(pid_values)
        self.camids = tf.constant(
            np.concatenate([t["camid"].to_numpy() for t in tables]).astype(np.int32)
        )
        self.dataset = tf.constant(np.repeat(np.arange(len(tables), dtype=np.int32), self.sizes))
        self.path_tensor = tf.constant(self.paths)
        self.classes = None if classes is None else tf.constant(classes, tf.int32)
        self.named = named

    def labels(self, indices, with_meta):
        pids = tf.gather(self.pids, indices)
        classes = None if self.classes is None else tf.gather(self.classes, indices)
        if not with_meta:
            return pids if classes is None else classes
        meta = {
            "pid": pids,
            "camid": tf.gather(self.camids, indices),
            "dataset": tf.gather(self.dataset, indices),
        }
        if classes is not None:
            meta["label"] = classes
        return meta


def _decode_all(paths, image_size, tables=None):
    """Every image decoded and resized once, as a uint8 array ``[N, H, W, 3]``.

    ``tables``, the ``(name, table)`` pairs ``paths`` come from, name them in an error.
    """
    images = np.empty((len(paths), *image_size, 3), np.uint8)
    dataset = (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(lambda p: load_image(p, image_size), num_parallel_calls=AUTOTUNE)
        .batch(256)
    )
    start = 0
    try:
        for batch in dataset:
            images[start : start + len(batch)] = batch.numpy()
            start += len(batch)
    except IMAGE_ERRORS as error:
        raise explain_unreadable(error, tables if tables is not None else list(paths)) from error
    logger.info(
        "cached %d images of %s in memory (%.0f MB)", len(paths), image_size, images.nbytes / 2**20
    )
    return images


def _batches(rows, indices, image_size, augment, with_meta, cache):
    """The dataset of batches for a dataset of (row indices [B], augmentation seed [2])."""
    batch_size = indices.element_spec[0].shape[0]

    def finish(images, labels, seed):
        images = tf.cast(images, tf.float32)
        if augment is not None:
            images = augment(images, seed)
        return images, labels

    if cache:
        # Whole batches are gathered from memory, so the parallelism is
        # across batches rather than across images.
        cached = tf.constant(_decode_all(rows.paths, image_size, rows.named))
        dataset = indices.map(
            lambda idx, seed: finish(tf.gather(cached, idx), rows.labels(idx, with_meta), seed),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    else:
        # Images are decoded one by one in parallel, then regrouped: the
        # index batches are whole and the stream is infinite, so batch() puts
        # exactly the same rows back together. The batch's seed travels with
        # each of its images through unbatch().
        dataset = (
            indices.map(
                lambda idx, seed: (
                    tf.gather(rows.path_tensor, idx),
                    rows.labels(idx, with_meta),
                    tf.repeat(seed[None], batch_size, axis=0),
                )
            )
            .unbatch()
            .map(
                lambda path, labels, seed: (load_image(path, image_size), labels, seed),
                num_parallel_calls=AUTOTUNE,
                deterministic=True,
            )
            .batch(batch_size, drop_remainder=True)
            .map(
                lambda images, labels, seeds: finish(images, labels, seeds[0]),
                num_parallel_calls=AUTOTUNE,
                deterministic=True,
            )
        )
    return dataset.prefetch(AUTOTUNE)


def steps_per_epoch(tables, p=18, k=4):
    """Batches in one epoch: the number of images over P·K, at least 1.

    Example:
        >>> steps_per_epoch(market.train, 18, 4)  # 12,936 // 72
        179
    """
    _positive(p=p, k=k)
    total = sum(len(table) for _, table in named_tables(tables))
    return max(1, total // (p * k))


def inference_batches(table, image_size=(256, 128), batch_size=64, flip=False):
    """Every row of ``table`` once, in order, in batches (the last one partial).

    Flip test-time augmentation is a second pass with ``flip=True``, which
    yields the same batches mirrored left-right, so that both passes feed
    ``model.predict`` directly::

        features = model.predict(inference_batches(query))
        features += model.predict(inference_batches(query, flip=True))

    Args:
        table: a table with a ``path`` column (any pids, junk included).
        image_size: ``(height, width)``. Default ``(256, 128)``.
        batch_size: images per batch. Default 64.
        flip: mirror every image horizontally. Default False.

    Returns:
        a finite ``tf.data.Dataset`` of float32 images ``[B, H, W, 3]``, raw 0-255 RGB.

    Example:
        >>> query_features = model.predict(inference_batches(market.query))
    """
    _positive(batch_size=batch_size)
    image_size = _check_image_size(image_size)
    if "path" not in table:
        raise ReIDError("inference_batches: the table has no 'path' column.")
    paths = tf.constant(table["path"].astype(str).to_numpy(), dtype=tf.string)

    def to_float(images):
        images = tf.cast(images, tf.float32)
        return tf.reverse(images, [2]) if flip else images

    return (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(lambda p: load_image(p, image_size), num_parallel_calls=AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .map(to_float)
        .prefetch(AUTOTUNE)
    )
