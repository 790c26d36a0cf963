"""Embeddings from a trained model in a notebook or a script: :class:`FeatureExtractor`.

The extractor computes exactly what the exported SavedModel serves
(:mod:`keras_reid.serving.savedmodel` builds its signatures from :func:`serve_outputs`):
raw uint8 RGB at the model's size in, the embedding L2-normalised out,
optionally averaged with the horizontal flip first (Hermans et al. 2017,
Sec. 4.4). EmbAE's z_nui ("nuisance") is returned as the model gives it.

Example:
    >>> import keras_reid
    >>> extractor = keras_reid.FeatureExtractor("runs/emb/model.keras", tta="flip")
    >>> query = extractor.embed(dataset.query)            # a dataset table
    >>> crops = extractor.embed(["a.jpg", "b.png"])       # image files, any size
    >>> batch = extractor.embed(images_uint8)             # [N, H, W, 3] at the model's size
"""

import os

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from keras_reid._quiet import progress_wanted
from keras_reid.checks import is_int
from keras_reid.data.images import IMAGE_ERRORS, explain_unreadable
from keras_reid.data.pipeline import inference_batches
from keras_reid.errors import ReIDError
from keras_reid.serving.extract import tta_views
from keras_reid.serving.model_io import (
    as_dict_outputs,
    check_finite_features,
    check_finite_weights,
    inspect_model,
    load_model,
)

# Test-time augmentation that can live inside a fixed-size serving graph.
SERVED_TTA = (None, "flip")


def check_served_tta(tta):
    """ReIDError unless ``tta`` is one of ``SERVED_TTA``."""
    if tta not in SERVED_TTA:
        raise ReIDError(
            f"unknown tta {tta!r} for serving; expected None or 'flip' (crop TTA needs images "
            "larger than the model's input: use keras_reid.serving.extract.extract_features)."
        )


def _shape_check(tensor, expected, message):
    """``tensor`` guarded by an in-graph check that its shape is ``expected`` (None: any size).

    A SavedModel signature does not enforce its input shape: TF Serving and
    ``loaded.signatures[...]`` pass any tensor on, and the reshape in
    :func:`serve_outputs` would turn one 128x64 image into four 64x32 rows.
    The runtime shape is padded with -1 past ``expected``'s rank, so a tensor
    of another rank fails the comparison instead of the op (and the check
    reads only the runtime shape, which graph optimisation cannot fold).
    """
    rank = len(expected)
    shape = tf.shape(tensor)
    padded = tf.concat([shape, tf.fill([rank + 1], -1)], axis=0)[: rank + 1]
    conditions = [tf.equal(padded[rank], -1)]  # no dimension beyond ``rank``
    conditions += [
        tf.equal(padded[axis], size) if size is not None else tf.greater_equal(padded[axis], 0)
        for axis, size in enumerate(expected)
    ]
    check = tf.debugging.Assert(
        tf.reduce_all(tf.stack(conditions)), [message, shape], summarize=rank + 4
    )
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def check_images(images, image_size, name="images"):
    """``images`` with an in-graph check that they are ``[batch, H, W, 3]`` at ``image_size``."""
    height, width = image_size
    return _shape_check(
        images,
        [None, height, width, 3],
        f"{name} must be RGB [batch, {height}, {width}, 3] (the size the model takes; send images "
        "of other sizes as JPEG/PNG bytes to embed_encoded); received shape",
    )


def check_batch(tensor, name, batch=None):
    """``tensor`` with an in-graph check that it is a vector ``[batch]`` (e.g. ``encoded``)."""
    kind = tensor.dtype.name
    checked = _shape_check(
        tensor, [None], f"{name} must be a vector [batch] of {kind} (one per image); received shape"
    )
    if batch is None:
        return checked
    count = tf.shape(checked)[0]
    check = tf.debugging.Assert(
        tf.equal(count, batch),
        [f"{name} needs one {kind} entry per image; images:", batch, f"{name}:", count],
    )
    with tf.control_dependencies([check]):
        return tf.identity(checked)


def serve_outputs(model, spec, images, group=None, tta=None, normalize=True):
    """The served computation, in TensorFlow ops: images (+ group) -> {output: float32 [B, D]}.

    Args:
        model: the Keras model; ``spec`` its :func:`inspect_model`.
        images: uint8 (or float) raw RGB ``[B, H, W, 3]`` at the model's size
            (checked in the graph: another shape is an InvalidArgumentError).
        group: int32 ``[B]`` θ_nui groups, for a model with a group input
            (None: group 0 for every image; checked to be one per image).
        tta: None or "flip" (each output averaged over the image and its mirror).
        normalize: L2-normalise the embedding (the nuisance is never normalised).
    """
    height, width = spec.image_size
    images = tf.cast(check_images(images, spec.image_size), tf.float32)
    if group is not None:
        group = check_batch(group, "group", tf.shape(images)[0])
    views = tta_views(images, tta)
    count = views.shape[0]
    inputs = tf.reshape(views, [-1, height, width, 3])
    if spec.takes_group:
        if group is None:
            group = tf.zeros(tf.shape(images)[:1], tf.int32)
        inputs = {"images": inputs, "group": tf.tile(tf.cast(group, tf.int32), [count])}
    raw = model(inputs, training=False)
    if not isinstance(raw, dict):
        raw = dict(zip(model.output_names, keras.tree.flatten(raw), strict=True))
    result = {}
    for name in spec.outputs:
        values = tf.cast(raw[name], tf.float32)
        values = tf.reduce_mean(tf.reshape(values, [count, -1, spec.dims[name]]), axis=0)
        if name == "embedding" and normalize:
            values = tf.math.l2_normalize(values, axis=-1)
        result[name] = values
    return result


def _as_paths(items):
    paths = [os.fspath(item) for item in items]
    # Only what is not there at all: a folder, a symlink loop or a damaged
    # file is named with its reason when it fails to decode (_explained).
    missing = [path for path in paths if not os.path.lexists(path)]
    if missing:
        raise ReIDError(
            f"{len(missing)} image file(s) not found, e.g. {', '.join(missing[:3])}; "
            "pass existing image paths."
        )
    return paths


def _explained(batches, source):
    """Iterate the decoded ``batches`` of ``source``; a file that fails is named with why."""
    try:
        yield from batches
    except IMAGE_ERRORS as error:
        raise explain_unreadable(error, source) from error


class FeatureExtractor:
    """Embeddings of image files, uint8 arrays or dataset tables, as numpy arrays.

    The same computation as the exported SavedModel's signatures (see
    :mod:`keras_reid.serving.savedmodel`): an extractor and a TF Serving deployment of
    the same model return the same vectors.

    Args:
        model: a keras_reid ``keras.Model`` or the path of a ``.keras`` file
            (an embedding model, or EmbAE's ``inference.keras``).
        batch_size: images per forward pass. Default 128.
        tta: None or "flip" (average with the mirrored image). Default None.
        normalize: L2-normalise the embedding, as the SavedModel does. Default True.
        progress: show a progress bar; None (default) shows one for inputs of
            more than one batch.

    Example:
        >>> extractor = FeatureExtractor("runs/emb/model.keras", batch_size=64, tta="flip")
        >>> features = extractor.embed(load_dataset("synth-b").query)   # [N, 128]
    """

    def __init__(self, model, batch_size=128, tta=None, normalize=True, progress=None):
        if isinstance(model, (str, os.PathLike)):
            model = load_model(model)  # checks the weights too, naming the file
        elif isinstance(model, keras.Model):
            model = as_dict_outputs(model)
            check_finite_weights(model)
        self.spec = inspect_model(model)
        check_served_tta(tta)
        if not is_int(batch_size, minimum=1):
            raise ReIDError(
                f"batch_size must be a positive integer. Received: batch_size={batch_size!r}"
            )
        self.model = model
        self.batch_size = batch_size
        self.tta = tta
        self.normalize = bool(normalize)
        self.progress = progress
        self._function = tf.function(self._embed_batch, reduce_retracing=True)

    @property
    def image_size(self):
        """(height, width) the model takes; arrays must have it, files are resized to it."""
        return self.spec.image_size

    def _embed_batch(self, images, group):
        return serve_outputs(
            self.model, self.spec, images, group, tta=self.tta, normalize=self.normalize
        )

    def _groups(self, group, count, output):
        if not self.spec.takes_group:
            if group is not None:
                raise ReIDError(
                    f"model {self.model.name!r} has no group input; call embed without group."
                )
            return np.zeros(count, np.int32)
        if group is None:
            if output == "nuisance" and self.spec.groups > 1:
                raise ReIDError(
                    f"model {self.model.name!r} has {self.spec.groups} θ_nui groups: pass "
                    "group= (an int, or one per image; the groups.json beside the model "
                    "names them) to get the nuisance."
                )
            return np.zeros(count, np.int32)  # z_id does not read the group
        groups = np.broadcast_to(np.asarray(group), (count,)) if np.ndim(group) == 0 else group
        groups = np.asarray(groups)
        if groups.shape != (count,) or not np.issubdtype(groups.dtype, np.integer):
            raise ReIDError(
                f"group must be an int or {count} ints (one per image); got "
                f"{groups.dtype} of shape {groups.shape}."
            )
        if groups.min() < 0 or groups.max() >= self.spec.groups:
            raise ReIDError(
                f"group values must be in [0, {self.spec.groups}) for model "
                f"{self.model.name!r}; got {groups.min()}..{groups.max()}."
            )
        return groups.astype(np.int32)

    def _as_array(self, images, single=False):
        """``images`` as uint8 ``[N, H, W, 3]``; with ``single``, one image ``[H, W, 3]``."""
        height, width = self.spec.image_size
        received = images.shape
        if images.ndim == 3 and not single:
            images = images[None]
        batch = () if single else images.shape[:1]
        if images.dtype != np.uint8 or images.shape != (*batch, height, width, 3):
            expected = f"[{height}, {width}, 3] each" if single else f"[N, {height}, {width}, 3]"
            raise ReIDError(
                f"expected uint8 RGB images {expected} (the model's size), image paths or a "
                f"dataset table; got a {images.dtype} array of shape {received} (resize "
                f"to {height}x{width} RGB and convert with .astype('uint8'), or pass files)."
            )
        return images

    def _batches(self, images):
        """(uint8 or float batches, count): arrays are sliced, paths decoded by tf.data."""
        source = None
        if isinstance(images, pd.DataFrame):
            if "path" not in images:
                raise ReIDError("the table has no 'path' column; pass a dataset table.")
            source, images = images, list(images["path"])
        if isinstance(images, (str, os.PathLike)):
            images = [images]
        if isinstance(images, (list, tuple)):
            if not images:
                raise ReIDError("nothing to embed: the list of images is empty.")
            if all(isinstance(item, (str, os.PathLike)) for item in images):
                paths = _as_paths(images)
                table = pd.DataFrame({"path": paths})
                batches = inference_batches(table, self.spec.image_size, self.batch_size)
                return _explained(batches, paths if source is None else source), len(paths)
            if not all(isinstance(item, np.ndarray) for item in images):
                raise ReIDError(
                    "a list to embed must hold only image paths or only uint8 arrays [H, W, 3]."
                )
            images = np.stack([self._as_array(item, single=True) for item in images])
        if not isinstance(images, np.ndarray):
            raise ReIDError(
                f"cannot embed a {type(images).__name__}; expected image paths, uint8 arrays "
                "[N, H, W, 3] at the model's size, or a dataset table (a 'path' column)."
            )
        images = self._as_array(images)
        if not len(images):
            raise ReIDError("nothing to embed: the array holds no image.")
        step = self.batch_size
        return (images[start : start + step] for start in range(0, len(images), step)), len(images)

    def embed(self, images, output="embedding", group=None):
        """The ``output`` of every image, in order, as a float32 numpy array ``[N, D]``.

        Args:
            images: image paths (any size; decoded and resized to the model's
                size like the training data), a dataset table (its ``path``
                column), or uint8 RGB arrays ``[N, H, W, 3]`` / ``[H, W, 3]``
                at the model's size.
            output: "embedding" (default) or, for EmbAE, "nuisance".
            group: EmbAE only: the θ_nui group, an int or one per image
                (default 0; needed for the nuisance of a multi-group model).

        Example:
            >>> z = FeatureExtractor(model).embed(["q1.jpg", "q2.jpg"])   # [2, 128]
        """
        if output not in self.spec.outputs:
            raise ReIDError(
                f"model {self.model.name!r} has no served output {output!r}; expected one of: "
                f"{', '.join(self.spec.outputs)}."
            )
        batches, count = self._batches(images)
        groups = self._groups(group, count, output)
        show = self.progress if self.progress is not None else count > self.batch_size
        show = progress_wanted(show)
        from tqdm.auto import tqdm

        chunks = []
        done = 0
        with tqdm(total=count, unit="img", desc="embed", disable=not show, leave=False) as bar:
            for batch in batches:
                size = len(batch)
                values = self._function(batch, groups[done : done + size])[output]
                chunks.append(values.numpy())
                done += size
                bar.update(size)
        features = np.concatenate(chunks)
        check_finite_features(features, f"model {self.model.name!r}", f"images ({output})")
        return features
