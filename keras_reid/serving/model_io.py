"""Loading, inspecting and checking models: one place for a model file and what it holds.

:func:`load_model` (``keras_reid.load_model``) and :func:`load_keras_model`
load a ``.keras`` file with one-line errors naming what is wrong with it;
:func:`inspect_model` tells what a model computes (its input size, outputs,
z_nui groups: a :class:`ModelSpec`); :func:`check_model`,
:func:`check_finite_weights` and :func:`check_finite_features` refuse a model
or features with NaN or infinite values; :func:`model_image_size` is the
``(height, width)`` a model takes. Every serving path (the feature extractor,
the SavedModel and ONNX exports, the gallery) and every scoring path loads
models through here.
"""

import os
import zipfile
from dataclasses import dataclass

import keras
import numpy as np

from keras_reid.errors import ReIDError, one_line
from keras_reid.layers.grouped import GroupedDense

# The outputs a served model returns, in this order, where the model has them.
SERVED_OUTPUTS = ("embedding", "nuisance")


@dataclass(frozen=True)
class ModelSpec:
    """What serving needs to know about a keras_reid model.

    Attributes:
        image_size: (height, width) of the image input.
        takes_group: the model has a "group" input (EmbAE's θ_nui group).
        groups: number of θ_nui weight sets (1 when there is no group input).
        outputs: the served outputs the model has, e.g. ("embedding", "nuisance").
        dims: the size of each served output.
    """

    image_size: tuple
    takes_group: bool
    groups: int
    outputs: tuple
    dims: dict


def _nested_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _nested_layers(layer)


def inspect_model(model):
    """The :class:`ModelSpec` of a keras_reid model, or a ReIDError naming the expected form.

    A servable model takes raw RGB images ``[batch, H, W, 3]`` (a single input,
    or a dict input "images" with an optional int "group") and has a named
    output "embedding" (and, for EmbAE, "nuisance"): a dict key, or the name
    of the layer of a single plain-tensor output.

    Example:
        >>> inspect_model(model).image_size
        (128, 64)
    """
    if not isinstance(model, keras.Model):
        raise ReIDError(
            f"expected a keras.Model or the path of a .keras file; got {type(model).__name__}."
        )
    model = as_dict_outputs(model)
    outputs = tuple(model.output_names)
    if "embedding" not in outputs:
        raise ReIDError(
            f"model {model.name!r} has no 'embedding' output (outputs: {', '.join(outputs)}); "
            "expected a keras_reid model with a named embedding output."
        )
    structure = model.input
    if isinstance(structure, dict):
        unknown = sorted(set(structure) - {"images", "group"})
        if "images" not in structure or unknown:
            raise ReIDError(
                f"model {model.name!r} takes the inputs {', '.join(sorted(structure))}; expected "
                "images [batch, H, W, 3] (and optionally group), e.g. EmbAE's inference.keras "
                "rather than its autoencoder model.keras."
            )
        images = structure["images"]
    elif isinstance(structure, (list, tuple)):
        raise ReIDError(
            f"model {model.name!r} takes {len(structure)} inputs; expected one image input "
            "[batch, H, W, 3] or a dict with 'images' (and optionally 'group')."
        )
    else:
        images = structure
    shape = tuple(images.shape)
    if len(shape) == 4 and None not in shape[1:] and shape[3] != 3:
        raise ReIDError(
            f"model {model.name!r} takes {shape[3]}-channel images {shape}; keras_reid feeds "
            f"RGB images [batch, H, W, 3]: build the model with input_shape=({shape[1]}, "
            f"{shape[2]}, 3) (a grey image is RGB with three equal channels)."
        )
    if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[3] != 3:
        raise ReIDError(
            f"model {model.name!r} has an image input of shape {shape}; expected "
            "[batch, H, W, 3] with a fixed H and W."
        )
    takes_group = isinstance(structure, dict) and "group" in structure
    groups = 1
    if takes_group:
        grouped = [
            layer.groups for layer in _nested_layers(model) if isinstance(layer, GroupedDense)
        ]
        groups = max(grouped, default=1)
    served = tuple(name for name in SERVED_OUTPUTS if name in outputs)
    by_name = dict(zip(outputs, model.outputs, strict=True))
    dims = {name: int(by_name[name].shape[-1]) for name in served}
    return ModelSpec((int(shape[1]), int(shape[2])), takes_group, groups, served, dims)


def load_model(path, output="embedding"):
    """Load a keras_reid ``.keras`` model, with one-line errors for a wrong path or model.

    ``keras.models.load_model(path)`` works too after ``import keras_reid``;
    this adds the checks: the file exists, is a Keras model, has the
    ``output`` (default "embedding"), takes RGB images and holds no NaN or
    infinite weight. A model whose single plain-tensor output comes from a
    layer named "embedding" is returned wrapped with a dict output.

    Example:
        >>> model = keras_reid.load_model("runs/emb/model.keras")
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.isdir(path):
        hint = (
            " (a SavedModel: load it with tf.saved_model.load)"
            if os.path.isfile(os.path.join(path, "saved_model.pb"))
            else ""
        )
        raise ReIDError(f"{path} is a folder{hint}; pass the path of a .keras model file.")
    return load_keras_model(path, output=output)


def _not_a_model(path, error):
    """Why the existing file ``path`` did not load as a model, and what to do, in one line."""
    reason = one_line(f"{type(error).__name__}: {error}")
    try:
        with open(path, "rb"):
            pass
    except OSError as unreadable:
        return f"{path} cannot be read ({one_line(unreadable)}); check its permissions."
    extension = os.path.splitext(path)[1].lower()
    try:
        with zipfile.ZipFile(path) as archive:
            is_keras = "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        is_zip = is_keras = False
    else:
        is_zip = True
    if is_keras and extension != ".keras":
        return (
            f"{path} is a .keras archive under another name; Keras loads it only from a name "
            f"ending in .keras: rename it to {os.path.splitext(path)[0]}.keras."
        )
    if is_keras:
        return (
            f"{path} exists but is not a loadable Keras model file (damaged, or it needs code "
            f"or a version this installation lacks: {reason}); pass a .keras file saved by "
            "keras_reid, or copy it again from the run folder."
        )
    if is_zip:
        return (
            f"{path} exists but is not a Keras model file: a zip archive without the "
            "config.json of one; pass the model.keras (or inference.keras) a keras_reid run wrote."
        )
    if extension == ".keras":
        return (
            f"{path} exists but is not a Keras model file: a .keras file is a zip archive and "
            f"this {os.path.getsize(path)}-byte file is not one (a text file, or a truncated "
            "copy or download); pass the model.keras a keras_reid run wrote, or copy it again."
        )
    if extension not in (".h5", ".hdf5"):
        return (
            f"{path} exists but is not a Keras model file: Keras reads .keras files (and "
            "legacy .h5), not this one; pass the model.keras a keras_reid run wrote."
        )
    return (
        f"{path} exists but is not a Keras model file ({reason}); pass a .keras file saved "
        "by keras_reid."
    )


def check_finite_weights(model, where=None):
    """ReIDError naming the weights of ``model`` that hold NaN or infinity (a diverged run).

    ``where`` (default: the model's name) starts the message, e.g. the model file.
    """
    bad = non_finite_weights(model)
    if bad:
        where = where or f"model {model.name!r}"
        raise ReIDError(
            f"{where}: {len(bad)} of {len(model.weights)} weights hold NaN or infinity (e.g. "
            f"{', '.join(bad[:3])}), so every embedding it computes is meaningless: its "
            "training diverged. Re-train with a lower learning rate (schedule.base_lr), or "
            "use an earlier checkpoint (checkpoints/epoch_NNNN.keras in the run folder)."
        )


def check_finite_features(features, where, what="images"):
    """ReIDError when rows of ``features`` [N, D] hold NaN or infinity."""
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        raise ReIDError(
            f"{where} gives non-finite embeddings (NaN or infinity) for {int(bad.sum())} of "
            f"{len(features)} {what} (rows {np.flatnonzero(bad)[:5].tolist()}); the model "
            "overflows or diverged: re-train it with a lower learning rate, or use an "
            "earlier checkpoint."
        )


def check_model(model, where=None):
    """ReIDError unless ``model`` takes RGB images, has an embedding and finite weights.

    ``where`` (e.g. the model file) starts the messages.
    """
    try:
        inspect_model(model)
    except ReIDError as error:
        raise ReIDError(f"{where}: {error}" if where else str(error)) from None
    check_finite_weights(model, where)


def load_keras_model(path, output="embedding"):
    """``keras.models.load_model`` with one-line errors for a wrong file or a missing output.

    The model must also take RGB images ``[batch, H, W, 3]`` and hold finite
    weights (a diverged run's NaN model is refused): see :func:`check_model`.
    """
    path = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.isfile(path):
        raise ReIDError(f"no model file {path}; pass the path of a .keras file.")
    try:
        model = keras.models.load_model(path)
    except Exception as error:  # Keras raises many types for a file that is not a model
        raise ReIDError(_not_a_model(path, error)) from None
    try:
        model = as_dict_outputs(model)
    except ReIDError as error:
        raise ReIDError(f"{path}: {error}") from None
    if output not in model.output_names:
        raise ReIDError(
            f"{path} has no {output!r} output (outputs: {', '.join(model.output_names)}); "
            "expected a keras_reid model with a named embedding output (a dict output with "
            "the key 'embedding', or a single output whose layer is named 'embedding')."
        )
    check_model(model, path)
    return model


def as_dict_outputs(model):
    """``model`` with its outputs as a dict ``{name: tensor}``; other forms are wrapped.

    A model whose single output layer is named "embedding" (a plain tensor,
    or a ``keras.Sequential`` ending in such a layer) is an embedding model
    too; the wrapper shares its layers and weights, and feature extraction
    and serving then read the outputs by name.

    Example:
        >>> as_dict_outputs(sequential)(images)["embedding"]
    """
    if not isinstance(model, keras.Model):
        return model  # inspect_model names the expected type
    try:
        if isinstance(model, keras.Sequential):
            inputs, names = model.inputs[0], [model.layers[-1].name]
        else:
            inputs, names = model.input, model.output_names
        outputs = model.outputs
    except (AttributeError, IndexError, ValueError):
        raise ReIDError(
            f"model {model.name!r} has no defined inputs and outputs (a subclassed or "
            "unbuilt model); build it as a functional model, keras.Model(inputs, outputs), "
            "or a Sequential that starts with keras.Input(shape)."
        ) from None
    if not isinstance(model, keras.Sequential) and isinstance(model.output, dict):
        return model
    return keras.Model(inputs, dict(zip(names, outputs, strict=True)), name=model.name)


def takes_group(model):
    """True for a model with a dict input holding "group" (EmbAE's inference model)."""
    return isinstance(model.input, dict) and "group" in model.input


def non_finite_weights(model):
    """Names of the model's weights (trainable or not) holding a NaN or an infinity.

    A diverged run can leave NaN weights while its logged loss looks finite
    (BatchNorm statistics, for one, never enter the training loss). Training,
    evaluation and export check this before they trust a model.

    Example:
        >>> if non_finite_weights(model):
        ...     raise ReIDError("the model diverged")
    """
    return [
        weight.path
        for weight in model.weights
        if not np.isfinite(keras.ops.convert_to_numpy(weight.value)).all()
    ]


def model_image_size(model):
    """(height, width) of a model's image input (its only input, or the dict input "images")."""
    structure = model.input
    images = structure.get("images", model.inputs[0]) if isinstance(structure, dict) else None
    shape = (images if images is not None else model.inputs[0]).shape
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ReIDError(f"model input must be [batch, H, W, 3] images; got shape {tuple(shape)}.")
    return int(shape[1]), int(shape[2])
