"""ONNX export: :func:`export_onnx` (``keras-reid export --format onnx``).

The ONNX file holds the computation of the SavedModel's ``serving_default``
signature (:func:`keras_reid.serving.extractor.serve_outputs`), pre-processing and
flip TTA included, converted by tf2onnx:

- input ``images``: uint8 ``[batch, H, W, 3]`` RGB at the model's size;
- output ``embedding``: float32 ``[batch, D]``, L2-normalised; EmbAE adds
  ``nuisance`` (z_nui, as the model gives it);
- a multi-group EmbAE model also takes ``group``: int32 ``[batch]``.

What differs from the SavedModel:

- No ``embed_encoded``: ONNX has no JPEG/PNG decoder; decode and resize on
  the client (``keras_reid.data.images.load_image`` reads files as
  training does).
- The graph's shape checks (``tf.debugging.Assert``) do not convert.
  onnxruntime checks the declared rank and the static dimensions of
  ``images`` itself; a ``group`` of another length than the batch, or with a
  value outside ``[0, groups)``, fails at a Reshape node named
  ``group_must_be_one_int_in_0_to_<G-1>_per_image``.

``metadata_props`` records what was exported (image size, TTA, embedding
dimension, keras_reid version, the groups.json of a multi-group model), each
value JSON-encoded: ``json.loads(session.get_modelmeta().custom_metadata_map["image_size"])``.
"""

import json
import os

import numpy as np
import tensorflow as tf

from keras_reid.errors import ReIDError
from keras_reid.fileio import atomic_output, remove_stale_temporaries
from keras_reid.serving.extractor import check_served_tta, serve_outputs
from keras_reid.serving.savedmodel import _quiet_info, export_record, prepare_model

# tf2onnx 1.17 converts to these opsets (None: its preferred one).
OPSETS = range(13, 19)
# Largest allowed |ONNX - TensorFlow| on the test batch, relative to the output's scale.
TOLERANCE = 1e-4


def onnx_file(out):
    """``out`` as an absolute path, checked to be a ``.onnx`` file path (not a folder)."""
    out = os.path.abspath(os.path.expanduser(os.fspath(out)))
    if os.path.isdir(out):
        raise ReIDError(f"--out {out} is a folder; the ONNX export is one file, e.g. emb.onnx.")
    if not out.endswith(".onnx"):
        raise ReIDError(
            f"--out {out} does not end with .onnx; name the ONNX file e.g. saved_models/emb.onnx."
        )
    return out


def _check_replaceable(out, overwrite):
    if os.path.lexists(out) and not overwrite:
        raise ReIDError(f"{out} exists; pass --overwrite (overwrite=True) to replace it.")


def _onnx_packages():
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as error:
        raise ReIDError(
            f"ONNX export needs tf2onnx and onnxruntime ({error}): pip install tf2onnx onnxruntime."
        ) from None
    return tf2onnx, onnxruntime


def _onnx_function(model, spec, tta):
    """The tf.function to convert and its input signature."""
    height, width = spec.image_size
    signature = [tf.TensorSpec([None, height, width, 3], tf.uint8, name="images")]
    if spec.groups == 1:

        def serve(images):
            return serve_outputs(model, spec, images, tta=tta)

        return tf.function(serve, input_signature=signature), signature

    groups = spec.groups

    def serve_grouped(images, group):
        # serve_outputs checks the group with tf.debugging.Assert, which
        # tf2onnx drops; a Reshape fails in onnxruntime too: it keeps the
        # in-range groups and needs exactly one per image.
        in_range = tf.boolean_mask(group, (group >= 0) & (group < groups))
        group = tf.reshape(
            in_range,
            tf.shape(images)[:1],
            name=f"group_must_be_one_int_in_0_to_{groups - 1}_per_image",
        )
        return serve_outputs(model, spec, images, group, tta=tta)

    signature.append(tf.TensorSpec([None], tf.int32, name="group"))
    return tf.function(serve_grouped, input_signature=signature), signature


def onnx_line(spec):
    """The ONNX graph's inputs and outputs in one line, e.g. ``images uint8 [...] -> ...``."""
    height, width = spec.image_size
    group = ", group int32 [batch]" if spec.groups > 1 else ""
    outputs = ", ".join(f"{name} float32 [batch, {spec.dims[name]}]" for name in spec.outputs)
    return f"images uint8 [batch, {height}, {width}, 3]{group} -> {outputs}"


def _test_batch(spec):
    """A fixed batch of three images (mid-grey and noise) and, if needed, groups."""
    noise = np.random.default_rng(0).integers(0, 256, (2, *spec.image_size, 3), dtype=np.uint8)
    feed = {"images": np.concatenate([np.full_like(noise[:1], 128), noise])}
    if spec.groups > 1:
        feed["group"] = (np.arange(3) % spec.groups).astype(np.int32)
    return feed


def _check_parity(proto, function, spec, where, onnxruntime):
    """ReIDError unless onnxruntime runs ``proto`` as TensorFlow runs ``function``."""
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    feed = _test_batch(spec)
    names = [output.name for output in session.get_outputs()]
    got = dict(zip(names, session.run(None, feed), strict=True))
    want = function(**{name: tf.constant(value) for name, value in feed.items()})
    for name in spec.outputs:
        reference = want[name].numpy()
        scale = max(1.0, float(np.abs(reference).max()))
        error = float(np.abs(got[name] - reference).max()) / scale
        if not error <= TOLERANCE:
            raise ReIDError(
                f"the ONNX graph of {where} differs from TensorFlow by {error:.2g} (> "
                f"{TOLERANCE:g}) in {name!r} on a test batch: a tf2onnx conversion problem; "
                "try another --opset or serve the SavedModel."
            )


def export_onnx(model, out_file, tta=None, overwrite=False, groups_file=None, opset=None):
    """Write ``model``'s ``serving_default`` computation as the ONNX file ``out_file``.

    The model is converted by tf2onnx, then run by onnxruntime on a test
    batch and compared with TensorFlow (a conversion that changes the
    outputs is refused). The file is written under a temporary name beside
    ``out_file`` and renamed into place.

    Args:
        model: a keras_reid model (embedding, or EmbAE's inference model) or
            the path of its ``.keras`` file.
        out_file: the ``.onnx`` file to write.
        tta: None or "flip": flip averaging inside the graph. Default None.
        overwrite: replace an existing file. Default False (refused).
        groups_file: a multi-group EmbAE model's ``groups.json`` (default: the
            one beside the ``.keras`` file), stored in the metadata.
        opset: the ONNX opset, 13 to 18. Default None (tf2onnx's choice, 15).

    Returns:
        the absolute path of the file.

    Example:
        >>> export_onnx("runs/emb/model.keras", "saved_models/emb.onnx", tta="flip")
    """
    check_served_tta(tta)
    out = onnx_file(out_file)
    if opset is not None and (isinstance(opset, bool) or opset not in OPSETS):
        raise ReIDError(
            f"opset must be an int from {OPSETS.start} to {OPSETS.stop - 1} (tf2onnx "
            f"1.17's range). Received: opset={opset!r}"
        )
    _check_replaceable(out, overwrite)
    tf2onnx, onnxruntime = _onnx_packages()
    model, spec, source, groups = prepare_model(model, groups_file)
    where = source or f"model {model.name!r}"
    function, signature = _onnx_function(model, spec, tta)
    try:
        with _quiet_info("tf2onnx"), _quiet_info("tensorflow"):
            proto, _ = tf2onnx.convert.from_function(
                function, input_signature=signature, opset=opset
            )
    except Exception as error:  # tf2onnx raises many types; the cause is chained
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ReIDError(
            f"tf2onnx cannot convert {where} ({reason}); serve the SavedModel instead."
        ) from error
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    _check_parity(proto, function, spec, where, onnxruntime)

    record = export_record(model, spec, tta, source)
    del record["signatures"]  # the SavedModel's; ONNX has one graph
    record["graph"] = onnx_line(spec)
    record["groups_json"] = groups
    proto.doc_string = f"keras_reid export of {where}: {onnx_line(spec)}"
    del proto.metadata_props[:]
    for key, value in record.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))

    remove_stale_temporaries(os.path.dirname(out), name=os.path.basename(out), recursive=False)
    with atomic_output(out, suffix=".onnx") as temporary:
        with open(temporary, "wb") as stream:
            stream.write(proto.SerializeToString())
        _check_replaceable(out, overwrite)  # another export may have landed meanwhile
    return out


def read_metadata(path):
    """The ``metadata_props`` of a keras_reid ONNX file, JSON-decoded.

    Example:
        >>> read_metadata("saved_models/emb.onnx")["embedding_dim"]
        128
    """
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    return {entry.key: json.loads(entry.value) for entry in model.metadata_props}
