"""Reading images as every pipeline does, and telling which files cannot be read.

:func:`load_image` decodes one file (JPEG, PNG, BMP or GIF) to float32 RGB in
the raw 0-255 range at ``image_size = (height, width)``, as the training and
inference pipelines do.

Unreadable images: TensorFlow's errors do not say which file failed, and a
bad file raises one of several error classes (:data:`IMAGE_ERRORS`) from the
iterator or ``model.fit``. :func:`find_unreadable` finds the files and why each
fails, decoding each with the pipeline's own decoder (:func:`image_problem`
for one file); :func:`explain_unreadable` turns the error into a one-line
ReIDError naming them (or re-raises it when every file reads)::

    try:
        model.fit(pk_batches(train), steps_per_epoch=steps_per_epoch(train))
    except IMAGE_ERRORS as error:
        raise explain_unreadable(error, train) from error
"""

import errno
import os

import pandas as pd
import tensorflow as tf

from keras_reid.errors import ReIDError

# The first bytes of the formats tf.io.decode_image reads, and the last bytes
# of a complete file where the format has an end marker.
_FORMATS = {
    b"\xff\xd8\xff": ("JPEG", b"\xff\xd9"),
    b"\x89PNG": ("PNG", b"IEND\xaeB`\x82"),
    b"BM": ("BMP", None),
    b"GIF8": ("GIF", b"\x3b"),
}
_MAGIC = tuple(_FORMATS)

# What TensorFlow raises for a bad image file while reading and decoding it:
# NotFoundError (missing), PermissionDeniedError, FailedPreconditionError (a
# folder), UnknownError (a symlink loop), InvalidArgumentError (empty, not an
# image, damaged) and DataLossError.
IMAGE_ERRORS = (
    tf.errors.InvalidArgumentError,
    tf.errors.NotFoundError,
    tf.errors.PermissionDeniedError,
    tf.errors.FailedPreconditionError,
    tf.errors.UnknownError,
    tf.errors.DataLossError,
)

_FIX = "keras-reid datasets NAME:ROOT --check lists them all"


def _decode(data):
    """The pipeline's decoder: encoded bytes -> uint8 RGB ``[H, W, 3]``."""
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def load_image(path, image_size=(256, 128)):
    """Read, decode and resize one image file with TensorFlow ops.

    Args:
        path: a scalar string tensor (or str), the image's path.
        image_size: ``(height, width)`` of the result. Default ``(256, 128)``.

    Returns:
        a uint8 tensor ``[height, width, 3]``, RGB, resized bilinearly and
        rounded (so that cached and streamed images are the same pixels).

    Raises:
        one of :data:`IMAGE_ERRORS`: InvalidArgumentError when the file is not
            an image (the message names the path) or is damaged inside; other
            classes for a missing file, a folder, a symlink loop or a file
            without read permission. TensorFlow's messages do not always name
            the file: :func:`explain_unreadable` does.

    Example:
        >>> image = load_image("/data/market/query/0001_c1s1_001051_00.jpg", (256, 128))
    """
    data = tf.io.read_file(path)
    head = tf.strings.substr(data, 0, 4)
    known = tf.reduce_any([tf.strings.substr(head, 0, len(magic)) == magic for magic in _MAGIC])
    check = tf.debugging.Assert(
        known, ["not a JPEG, PNG, BMP or GIF image (empty or damaged file?):", path]
    )
    with tf.control_dependencies([check]):
        image = _decode(data)
    image = tf.image.resize(image, image_size, method="bilinear")
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(image, [*image_size, 3])


def _os_reason(path, error):
    if error.errno == errno.ENOENT:
        return "broken symlink" if os.path.islink(path) else "not found"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.ELOOP:
        return "symlink loop"
    if error.errno == errno.EISDIR:
        return "a folder"
    if error.errno == errno.ENOTDIR:
        return "not found"
    return f"unreadable ({error.strerror or type(error).__name__})"


def image_problem(path):
    """Why the pipeline cannot read the image at ``path``, or None when it can.

    The file is read, its first bytes checked as :func:`load_image` checks
    them, and the bytes decoded eagerly with the pipeline's own decoder
    (``tf.io.decode_image``), which refuses files OpenCV would patch up (such
    as half of a JPEG).

    Returns:
        None, or one of: "not found", "broken symlink", "symlink loop",
        "a folder", "permission denied", "empty file", "not an image",
        "truncated JPEG" / "damaged JPEG" (and PNG, GIF; "damaged BMP").

    Example:
        >>> image_problem("/data/market/query/0001_c1s1_001051_00.jpg") is None
        True
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        return _os_reason(path, error)
    if not data:
        return "empty file"
    kind = next((kind for magic, kind in _FORMATS.items() if data.startswith(magic)), None)
    if kind is None:
        return "not an image"
    try:
        with tf.device("/CPU:0"):
            _decode(data)
    except IMAGE_ERRORS:
        name, end = kind
        truncated = end is not None and not data.rstrip(b"\0").endswith(end)
        return f"{'truncated' if truncated else 'damaged'} {name}"
    return None


def find_unreadable(table, reasons=False):
    """Paths in ``table`` that the pipelines cannot read, in table order.

    Each file gets its own verdict from :func:`image_problem`: decoded eagerly
    with the pipeline's decoder, on the CPU, one at a time (about 0.15 ms per
    128x64 JPEG, so about 5 s for Market-1501; threads were no faster).

    Args:
        table: a DataFrame with a ``path`` column (or a list of paths).
        reasons: return ``(path, reason)`` pairs instead of paths. Default False.

    Returns:
        the unreadable paths (or pairs), in table order; an empty list when all are fine.

    Example:
        >>> find_unreadable(market.train, reasons=True)
        [('/data/market/bounding_box_train/0002_c1s1_000451_03.jpg', 'truncated JPEG')]
    """
    paths = list(table["path"]) if isinstance(table, pd.DataFrame) else list(table)
    paths = [os.fspath(path) for path in paths]
    problems = ((path, image_problem(path)) for path in paths)
    bad = [(path, problem) for path, problem in problems if problem]
    return bad if reasons else [path for path, _ in bad]


def unreadable_error(bad, where=(), fix=_FIX):
    """The one-line ReIDError for ``bad``, a list of ``(path, reason)`` pairs.

    Args:
        bad: the pairs, as :func:`find_unreadable` gives them with ``reasons=True``.
        where: names of the tables they come from, e.g. ``["market1501/train"]``.
        fix: where the full list is, in parentheses after the advice.

    Example:
        >>> raise unreadable_error([("/d/x.jpg", "truncated JPEG")], ["market1501/train"])
        ReIDError: 1 unreadable image(s) in market1501/train, e.g. /d/x.jpg (truncated JPEG);
        delete or re-extract them (keras-reid datasets NAME:ROOT --check lists them all).
    """
    places = f" in {', '.join(where)}" if where else ""
    examples = ", ".join(f"{path} ({reason})" for path, reason in bad[:3])
    more = ", ..." if len(bad) > 3 else ""
    return ReIDError(
        f"{len(bad)} unreadable image(s){places}, e.g. {examples}{more}; delete or re-extract "
        f"them ({fix})."
    )


def _path_groups(tables):
    """[(name or None, paths)] from paths, a table, a list of tables or a dict name -> table."""
    if isinstance(tables, pd.DataFrame):
        items = [(None, tables)]
    elif isinstance(tables, dict):
        items = list(tables.items())
    elif all(isinstance(item, pd.DataFrame) for item in tables):
        items = [(None, table) for table in tables]
    elif all(isinstance(item, tuple) and isinstance(item[-1], pd.DataFrame) for item in tables):
        items = list(tables)  # (name, table) pairs, as _as_tables gives them
    else:
        return [(None, [os.fspath(path) for path in tables])]
    groups = []
    for name, table in items:
        if name is None and "dataset" in table:
            name = "+".join(map(str, table["dataset"].unique())) or None
        groups.append((name, [os.fspath(path) for path in table["path"]]))
    return groups


def explain_unreadable(error, tables):
    """The ReIDError naming the unreadable images behind a TensorFlow ``error``.

    TensorFlow's reading and decoding errors (:data:`IMAGE_ERRORS`) do not name
    the file. This checks every image of ``tables`` with :func:`find_unreadable`
    and returns one line naming the bad ones, their reasons and what to do.
    When every image reads, the error was about something else: it is raised
    again, unchanged.

    Args:
        error: the caught TensorFlow error.
        tables: the images read when it happened: a table (``path`` column), a
            list of tables, a dict name -> table, or a list of paths.

    Returns:
        a :class:`~keras_reid.errors.ReIDError`, to ``raise ... from error``.

    Example:
        >>> try:
        ...     features = model.predict(inference_batches(market.query))
        ... except IMAGE_ERRORS as error:
        ...     raise explain_unreadable(error, market.query) from error
    """
    bad, where, seen = [], [], set()
    for name, paths in _path_groups(tables):
        found = [pair for pair in find_unreadable(paths, reasons=True) if pair[0] not in seen]
        seen.update(path for path, _ in found)
        bad += found
        if found and name and name not in where:
            where.append(name)
    if not bad:
        raise error
    return unreadable_error(bad, where)
