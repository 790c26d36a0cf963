"""Feature extraction with test-time augmentation (TTA): the one extraction core.

TTA as in the triplet-loss papers (Hermans et al. 2017, Sec. 4.4): the
embedding of an image is combined from its horizontal flip and/or crops of a
slightly larger resize (the centre crop, or five crops: four corners + centre).
:func:`extract_features` serves scoring, training-time validation, PUL's
clustering and the EmbAE feature cache; :mod:`keras_reid.serving.extractor`
wraps it for notebooks and the exports.
"""

import math
import weakref

import numpy as np
import tensorflow as tf

from keras_reid._quiet import progress_wanted
from keras_reid.data.images import IMAGE_ERRORS, explain_unreadable, load_image
from keras_reid.errors import ReIDError
from keras_reid.serving.model_io import model_image_size, takes_group

TTA_MODES = (None, "flip", "center-crop", "five-crop", "five-crop-flip")


COMBINE_MODES = ("mean", "norm_mean")


def tta_views(images, tta=None, image_size=None, crop_pad=0.125):
    """The augmented views of a batch, stacked on a new leading axis: [V, B, H, W, 3].

    Args:
        images: float32 [B, H', W', 3]; for crop modes H' = ceil(H * (1 + crop_pad)).
        tta: one of ``TTA_MODES``.
        image_size: (H, W) of the model; needed by the crop modes.
        crop_pad: how much larger the crop source is (0.125: 256x128 from 288x144).
    """
    if tta in (None, "flip"):
        views = [images]
    else:
        height, width = image_size
        big_h, big_w = images.shape[1], images.shape[2]
        offsets = [((big_h - height) // 2, (big_w - width) // 2)]
        if tta.startswith("five-crop"):
            offsets += [
                (0, 0),
                (0, big_w - width),
                (big_h - height, 0),
                (big_h - height, big_w - width),
            ]
        views = [images[:, y : y + height, x : x + width] for y, x in offsets]
    if tta in ("flip", "five-crop-flip"):
        views += [tf.reverse(view, [2]) for view in views]
    return tf.stack(views)


def _check_tta(tta, combine):
    if tta not in TTA_MODES:
        raise ReIDError(f"unknown tta {tta!r}; expected one of: {', '.join(map(str, TTA_MODES))}.")
    if combine not in COMBINE_MODES:
        raise ReIDError(
            f"unknown combine {combine!r}; expected one of: {', '.join(COMBINE_MODES)}."
        )


# One traced function per (model, output, test-time augmentation): a new
# tf.function per call would be traced again each time (and TensorFlow warns of
# "retracing" after a few), when a table script scores many models on many
# datasets, or a validation callback scores the same model every few epochs.
# The function reads the model's variables, so it sees the current weights; it
# goes with its model.
_EMBED_FUNCTIONS = weakref.WeakKeyDictionary()


def _embedding_function(model, output, tta, combine, crop_pad, grouped):
    key = (output, tta, combine, crop_pad)
    functions = _EMBED_FUNCTIONS.setdefault(model, {})
    if key in functions:
        return functions[key]
    height, width = model_image_size(model)
    # Weakly: the dictionary's value must not keep its key (the model) alive.
    model_ref = weakref.ref(model)

    @tf.function(reduce_retracing=True)
    def embed(images):
        views = tta_views(images, tta, (height, width), crop_pad)
        count = tf.shape(views)[0]
        flat = tf.reshape(views, [-1, height, width, 3])
        inputs = flat
        if grouped:  # EmbAE's inference model: z_id does not read the group
            inputs = {"images": flat, "group": tf.zeros(tf.shape(flat)[:1], tf.int32)}
        features = tf.cast(model_ref()(inputs, training=False)[output], tf.float32)
        if combine == "norm_mean":
            features = tf.math.l2_normalize(features, axis=-1)
        features = tf.reshape(features, [count, -1, features.shape[-1]])
        return tf.reduce_mean(features, axis=0)

    functions[key] = embed
    return embed


def extract_features(
    model,
    table,
    batch_size=128,
    tta=None,
    combine="mean",
    output="embedding",
    crop_pad=0.125,
    progress=True,
):
    """Features of every row of ``table`` (in order) as a numpy array [N, D].

    Args:
        model: a Keras model taking raw RGB images with a dict output named
            ``output``; or EmbAE's inference model (inputs "images" and
            "group"), whose "embedding" (z_id) does not depend on the group.
        table: a dataset table (a ``path`` column) or a list of image paths.
        batch_size: images per forward pass (default 128).
        tta: None, "flip", "center-crop", "five-crop" or "five-crop-flip".
        combine: "mean" of the views' features, or "norm_mean" (each view's
            feature L2-normalised before the mean).
        output: the model output to extract (default "embedding").
        crop_pad: relative enlargement for the crop modes (default 0.125).
        progress: show a progress bar.

    Raises:
        ReIDError: naming the files that cannot be read or decoded (and why).

    Example:
        >>> q = extract_features(model, market.query, tta="flip")
    """
    _check_tta(tta, combine)
    paths = list(table["path"]) if hasattr(table, "columns") else list(table)
    if not paths:
        raise ReIDError("extract_features: the table is empty.")
    outputs = model.output_names if hasattr(model, "output_names") else []
    if output not in outputs:
        raise ReIDError(
            f"the model has no output {output!r} (outputs: {', '.join(outputs) or 'none'}); "
            "expected a keras_reid model with a named embedding output."
        )
    grouped = takes_group(model)
    if grouped and output != "embedding":
        # z_id ignores the θ_nui group; z_nui depends on it.
        raise ReIDError(
            f"output {output!r} of model {model.name!r} depends on each image's θ_nui group; "
            "use keras_reid.FeatureExtractor(...).embed(images, output=..., group=...)."
        )
    height, width = model_image_size(model)
    load_size = (height, width)
    if tta not in (None, "flip"):
        # ceil, not round: round(4.5) == 4 would leave a narrow model no room to crop.
        load_size = (math.ceil(height * (1 + crop_pad)), math.ceil(width * (1 + crop_pad)))

    embed = _embedding_function(model, output, tta, combine, crop_pad, grouped)
    dataset = (
        tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string))
        .map(
            lambda p: tf.cast(load_image(p, load_size), tf.float32),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    from tqdm.auto import tqdm

    chunks = []
    with tqdm(
        total=len(paths),
        unit="img",
        desc="features",
        disable=not progress_wanted(progress),
        leave=False,
    ) as bar:
        try:
            for images in dataset:
                chunks.append(embed(images).numpy())
                bar.update(len(chunks[-1]))
        except IMAGE_ERRORS as error:
            raise explain_unreadable(
                error, table if hasattr(table, "columns") else paths
            ) from error
    return np.concatenate(chunks)
