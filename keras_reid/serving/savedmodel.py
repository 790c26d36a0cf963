"""SavedModels for TF Serving: :func:`export_saved_model` (``keras-reid export``).

A version folder ``NAME/VERSION`` (TF Serving's layout) holds a SavedModel
with two signatures; pre-processing is inside the graph, so a client sends
raw pixels or image files:

- ``serving_default``: ``images`` uint8 ``[batch, H, W, 3]`` RGB at the
  model's size -> ``embedding`` float32 ``[batch, D]``, L2-normalised.
- ``embed_encoded``: ``encoded`` string ``[batch]``, JPEG/PNG bytes of any
  size (what a REST client sends as base64), decoded and resized bilinearly
  to the model's size inside the graph -> the same outputs.

EmbAE models add the output ``nuisance`` (z_nui, not normalised). When the
model has one θ_nui group, the signatures take only the images (group 0 is
set inside the graph); with several (per dataset or per camera) they also
take ``group`` int32 ``[batch]``, and the run's ``groups.json`` (which group
is which dataset/camera) is copied into ``assets.extra/``. ``tta="flip"``
averages every output over the image and its mirror inside the graph.

Every signature checks its inputs inside the graph (TF Serving does not):
images of another height, width, channel count or rank, an ``encoded`` or
``group`` that is not a vector, or a ``group`` of another length is an
``INVALID_ARGUMENT`` error naming the expected and the received shape. A
model whose weights or outputs are not finite (a diverged run) is refused.

``assets.extra/tf_serving_warmup_requests`` holds TF Serving warm-up requests
(:func:`warmup_requests`), which the server replays when it loads the version.
:func:`keras_reid.serving.onnx.export_onnx` writes the ``serving_default``
computation as an ONNX file instead.

The graph is plain TensorFlow: loading it needs neither Keras nor keras_reid.
"""

import contextlib
import errno
import json
import logging
import os
import re
import shutil

import keras
import tensorflow as tf

from keras_reid.errors import ReIDError
from keras_reid.fileio import install_folder, remove_stale_temporaries, temporary_folder
from keras_reid.serving.extractor import check_batch, check_served_tta, serve_outputs
from keras_reid.serving.model_io import (
    as_dict_outputs,
    check_finite_features,
    check_finite_weights,
    inspect_model,
    load_model,
)

SIGNATURES = ("serving_default", "embed_encoded")
# TF Serving reads warm-up requests from this file in the version's assets.extra/.
WARMUP_FILE = "tf_serving_warmup_requests"
SERVING_API_MISSING = "tensorflow-serving-api is not installed"
# Batch sizes of the warm-up requests: a single image and a small batch.
WARMUP_BATCHES = (1, 8)
# TF Serving parses a version folder's name as an int64.
MAX_VERSION = 2**63 - 1


def decode_images(encoded, image_size):
    """A string batch of JPEG/PNG/BMP/GIF bytes -> uint8 ``[batch, H, W, 3]`` at ``image_size``.

    Decoded, resized bilinearly and rounded exactly as
    :func:`keras_reid.data.images.load_image` reads a file, so a served
    image equals the pixels the model was evaluated on.
    """

    def decode(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(image, image_size, method="bilinear")
        return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)

    return tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec([*image_size, 3], tf.uint8))


def _signatures(model, spec, tta):
    """The two signature functions and their input signatures."""
    height, width = spec.image_size
    images_spec = tf.TensorSpec([None, height, width, 3], tf.uint8, name="images")
    encoded_spec = tf.TensorSpec([None], tf.string, name="encoded")

    def decode(encoded):
        return decode_images(check_batch(encoded, "encoded"), spec.image_size)

    if spec.groups == 1:

        def serve_images(images):
            return serve_outputs(model, spec, images, tta=tta)

        def serve_encoded(encoded):
            return serve_outputs(model, spec, decode(encoded), tta=tta)

        return [(serve_images, [images_spec]), (serve_encoded, [encoded_spec])]

    group_spec = tf.TensorSpec([None], tf.int32, name="group")

    # serve_outputs checks the shape of images and group (one int32 per image).
    def serve_images(images, group):
        return serve_outputs(model, spec, images, group, tta=tta)

    def serve_encoded(encoded, group):
        return serve_outputs(model, spec, decode(encoded), group, tta=tta)

    return [
        (serve_images, [images_spec, group_spec]),
        (serve_encoded, [encoded_spec, group_spec]),
    ]


def _read_groups(path, groups):
    """The parsed groups.json at ``path``, checked to name ``groups`` groups."""
    try:
        with open(path, encoding="utf-8") as stream:
            content = json.load(stream)
    except (OSError, ValueError) as error:
        raise ReIDError(
            f"cannot read the groups file {path} ({error}); pass the groups.json that "
            "training wrote beside the model."
        ) from None
    listed = content.get("groups") if isinstance(content, dict) else None
    if not isinstance(listed, list) or len(listed) != groups:
        count = len(listed) if isinstance(listed, list) else "no"
        raise ReIDError(
            f"{path} lists {count} groups but the model has {groups} θ_nui groups; pass the "
            "groups.json written with this model."
        )
    return content


def version_folder(out):
    """``out`` as an absolute path, checked to be ``.../NAME/VERSION`` with VERSION a number.

    VERSION is ASCII digits only: TF Serving parses it as an integer, and
    ``str.isdigit`` also accepts other scripts' digits (``"١"``) and ``"²"``.
    TF Serving reads it as an int64 and skips a folder with a leading zero
    (``01``), so those are refused too.
    """
    out = os.path.abspath(os.path.expanduser(os.fspath(out)))
    version = os.path.basename(out)
    if not re.fullmatch(r"[0-9]+", version) or not os.path.basename(os.path.dirname(out)):
        onnx = " (or pass --format onnx for an ONNX file)" if out.endswith(".onnx") else ""
        raise ReIDError(
            f"--out {out} is not a NAME/VERSION folder with VERSION in ASCII digits 0-9: TF "
            f"Serving serves only numbered version folders; use e.g. saved_models/my_model/1{onnx}."
        )
    if (version.startswith("0") and version != "0") or int(version) > MAX_VERSION:
        raise ReIDError(
            f"--out {out}: TF Serving reads version folders as int64 numbers without leading "
            f"zeros and would not serve version {version!r}; use a VERSION from 0 to "
            f"{MAX_VERSION} without leading zeros, e.g. saved_models/my_model/1."
        )
    if os.path.exists(out) and not os.path.isdir(out):
        raise ReIDError(f"{out} exists and is not a folder; choose another --out.")
    return out


def _check_replaceable(out, overwrite):
    if not os.path.isdir(out) or not os.listdir(out):
        return
    if not overwrite:
        raise ReIDError(
            f"{out} already holds a version; pass --overwrite (overwrite=True) to replace "
            "it, or export to the next version number."
        )
    if not os.path.isfile(os.path.join(out, "saved_model.pb")):
        raise ReIDError(
            f"{out} is not empty and holds no saved_model.pb, so it is not an export; "
            "--overwrite only replaces SavedModels. Remove it yourself or choose another --out."
        )


@contextlib.contextmanager
def _quiet_info(name):
    """Raise the logger ``name`` to WARNING inside the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def prepare_model(model, groups_file=None):
    """The checks every export shares: ``(model, spec, source, groups)``.

    ``model`` (a keras.Model or a ``.keras`` path) is loaded, given dict
    outputs and checked to hold finite weights and give finite outputs on a
    mid-grey image; a multi-group EmbAE model needs its ``groups.json``
    (default: the one beside the ``.keras`` file), returned parsed as
    ``groups`` (None for a single group).
    """
    source = None
    if isinstance(model, (str, os.PathLike)):
        source = os.path.abspath(os.path.expanduser(os.fspath(model)))
        model = load_model(source)  # checks the weights too, naming the file
    elif isinstance(model, keras.Model):
        model = as_dict_outputs(model)
        check_finite_weights(model)
    spec = inspect_model(model)
    _check_finite_outputs(model, spec, source or f"model {model.name!r}")
    groups = None
    if spec.groups > 1:
        if groups_file is None and source is not None:
            groups_file = os.path.join(os.path.dirname(source), "groups.json")
        if groups_file is None or not os.path.isfile(groups_file):
            raise ReIDError(
                f"model {model.name!r} has {spec.groups} θ_nui groups but no groups.json "
                f"{'at ' + groups_file + ' ' if groups_file else ''}names them; pass "
                "--groups FILE (groups_file=), the groups.json that training wrote."
            )
        groups = _read_groups(groups_file, spec.groups)
    elif groups_file is not None:
        raise ReIDError(
            f"model {model.name!r} has a single θ_nui group (group 0 is set inside the "
            "graph); a groups file is only for per-dataset or per-camera models."
        )
    return model, spec, source, groups


def export_saved_model(model, out, tta=None, overwrite=False, groups_file=None, warmup=None):
    """Write ``model`` as a TF Serving SavedModel into the version folder ``out``.

    The folder is written under a temporary name beside it and renamed into
    place when complete, so TF Serving (which watches ``NAME/`` for numbered
    folders) never loads half an export.

    Args:
        model: a keras_reid model (embedding, or EmbAE's inference model) or
            the path of its ``.keras`` file.
        out: ``.../NAME/VERSION``, VERSION a number (e.g. ``saved_models/emb/1``).
        tta: None or "flip": flip averaging inside the graph. Default None.
        overwrite: replace an existing version. Default False (refused).
        groups_file: a multi-group EmbAE model's ``groups.json`` (default: the
            one beside the ``.keras`` file), copied to ``assets.extra/``.
        warmup: write ``assets.extra/tf_serving_warmup_requests`` (see
            :func:`warmup_requests`), built with tensorflow-serving-api. None
            (default): when that package is installed; without it the export
            has no warm-up file, says so in a warning and records the reason
            in ``export.json`` ("warmup_skipped"). True: required (an error
            without the package). False: none.

    Returns:
        the absolute path of the version folder.

    Example:
        >>> export_saved_model("runs/emb/model.keras", "saved_models/emb/1", tta="flip")
    """
    check_served_tta(tta)
    out = version_folder(out)
    _check_replaceable(out, overwrite)
    skipped = None
    if warmup is None:
        try:
            _serving_apis()
            warmup = True
        except ReIDError:
            warmup = False
            skipped = SERVING_API_MISSING
            logging.getLogger("keras_reid").warning(
                "no TF Serving warm-up requests: %s (pip install --no-deps "
                "tensorflow-serving-api to add them)",
                skipped,
            )
    elif warmup:
        _serving_apis()  # before the slow part: a missing package fails at once
    model, spec, source, groups = prepare_model(model, groups_file)

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, signature) in zip(SIGNATURES, _signatures(model, spec, tta), strict=True):
        archive.add_endpoint(name, function, input_signature=signature)
    parent = os.path.dirname(out)
    remove_stale_temporaries(parent, name=os.path.basename(out), recursive=False)
    temporary = temporary_folder(out)
    try:
        with _quiet_info("tensorflow"):  # "Assets written to <temporary name>" says nothing
            archive.write_out(temporary, verbose=False)
        extra = os.path.join(temporary, "assets.extra")
        os.makedirs(extra)
        if groups is not None:
            with open(os.path.join(extra, "groups.json"), "w", encoding="utf-8") as stream:
                json.dump(groups, stream, indent=1)
        requests = warmup_requests(spec, os.path.basename(parent)) if warmup else []
        if requests:
            with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
                for request in requests:
                    writer.write(request.SerializeToString())
        record = {**export_record(model, spec, tta, source), "warmup_requests": len(requests)}
        if skipped:
            record["warmup_skipped"] = skipped
        with open(os.path.join(extra, "export.json"), "w", encoding="utf-8") as stream:
            json.dump(record, stream, indent=1)
        _check_replaceable(out, overwrite)  # another export may have landed meanwhile
        # Without overwrite, the rename itself refuses a version that another
        # export put in place after the check above.
        install_folder(temporary, out, replace=overwrite)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if _disk_full(error):
            # Named by the version folder, not by the temporary file TensorFlow was writing.
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), out) from error
        raise
    return out


def _disk_full(error):
    """Whether ``error``, an OSError or a TensorFlow error of a file write, is a full disk."""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    return isinstance(error, tf.errors.OpError) and os.strerror(errno.ENOSPC) in error.message


def _serving_apis():
    """``(predict_pb2, prediction_log_pb2)`` of tensorflow-serving-api, or a one-line ReIDError."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError:
        raise ReIDError(
            "TF Serving warm-up records need tensorflow-serving-api: pip install --no-deps "
            "tensorflow-serving-api (without --no-deps it pulls the `tensorflow` "
            "distribution over tensorflow-cpu), or export with --no-warmup (warmup=False)."
        ) from None
    return predict_pb2, prediction_log_pb2


def warmup_requests(spec, name):
    """TF Serving warm-up records for a model's export: a list of ``PredictionLog``.

    TF Serving replays ``assets.extra/tf_serving_warmup_requests`` when it
    loads a version, before it reports the version as available, so the
    first client request does not pay for the graph's lazy initialisation.
    One request per signature and batch size in ``WARMUP_BATCHES``:
    ``serving_default`` with mid-grey uint8 images, ``embed_encoded`` with a
    mid-grey JPEG at the model's size; a multi-group model's ``group`` cycles
    through its groups, so every group's branch runs.

    Args:
        spec: the model's :class:`~keras_reid.serving.model_io.ModelSpec`.
        name: the model name TF Serving serves it under (the ``NAME`` folder).
    """
    predict_pb2, prediction_log_pb2 = _serving_apis()
    grey = tf.fill([*spec.image_size, 3], tf.constant(128, tf.uint8))
    jpeg = tf.io.encode_jpeg(grey).numpy()
    requests = []
    for signature in SIGNATURES:
        for batch in WARMUP_BATCHES:
            if signature == "serving_default":
                inputs = {"images": tf.make_tensor_proto(tf.stack([grey] * batch).numpy())}
            else:
                inputs = {"encoded": tf.make_tensor_proto([jpeg] * batch, dtype=tf.string)}
            if spec.groups > 1:
                group = [i % spec.groups for i in range(batch)]
                inputs["group"] = tf.make_tensor_proto(group, dtype=tf.int32)
            request = predict_pb2.PredictRequest(inputs=inputs)
            request.model_spec.name = name
            request.model_spec.signature_name = signature
            log = prediction_log_pb2.PredictLog(request=request)
            requests.append(prediction_log_pb2.PredictionLog(predict_log=log))
    return requests


def _check_finite_outputs(model, spec, where):
    """ReIDError when a mid-grey image gives non-finite outputs (finite weights can overflow)."""
    grey = tf.fill([1, *spec.image_size, 3], tf.constant(128, tf.uint8))
    for name, values in serve_outputs(model, spec, grey, normalize=False).items():
        check_finite_features(values.numpy(), where, f"mid-grey test image ({name})")


def signature_lines(spec):
    """One line per signature, e.g. ``serving_default: images uint8 [batch, 128, 64, 3] -> ...``."""
    height, width = spec.image_size
    group = ", group int32 [batch]" if spec.groups > 1 else ""
    outputs = ", ".join(f"{name} float32 [batch, {spec.dims[name]}]" for name in spec.outputs)
    return [
        f"serving_default: images uint8 [batch, {height}, {width}, 3]{group} -> {outputs}",
        f"embed_encoded: encoded string [batch] (JPEG/PNG bytes){group} -> {outputs}",
    ]


def export_record(model, spec, tta, source=None):
    """The ``assets.extra/export.json`` of an export: what was exported, and how."""
    from keras_reid import __version__

    return {
        "model": model.name,
        "source": source,
        "keras_reid": __version__,
        "image_size": list(spec.image_size),
        "tta": tta,
        "groups": spec.groups,
        "embedding_dim": spec.dims["embedding"],
        "embedding_l2_normalized": True,
        "signatures": signature_lines(spec),
    }
