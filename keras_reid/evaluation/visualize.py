"""Where a model looks: its attention maps drawn over the images (``keras-reid attention``).

For a model with an "attention" output of shape (B, L, h, w) (the
self-attention model's maps of stages 4, 5 and 6), each image becomes one PNG:
the image at the model's input size, then one panel per level with the
level's map upsampled bilinearly, coloured (jet: blue low, red high, each map
scaled to its own maximum) and blended half-and-half over the image.

Example::

    written = write_attention_maps("runs/sal/model.keras", ["q/0001_c1s1.jpg"], "attention/")
"""

import os

import numpy as np

from keras_reid.errors import ReIDError
from keras_reid.fileio import atomic_output, make_folder

PANEL_HEIGHT = 256
GAP = 4


def _labels(model, count):
    """The levels' names kept by the layer giving the output (MultiLevelAttention)."""
    try:
        return model.get_layer("attention").level_names(count)
    except (ValueError, AttributeError):  # no such layer, or another kind
        return [f"level {index + 1}" for index in range(count)]


def read_images(paths, image_size):
    """The images at ``image_size`` (uint8 RGB, as the pipelines read them); one error for all."""
    from keras_reid.data.images import image_problem, load_image

    bad = [f"{path} ({problem})" for path in paths if (problem := image_problem(path)) is not None]
    if bad:
        raise ReIDError(
            f"{len(bad)} of {len(paths)} image(s) cannot be read: {', '.join(bad)}; give "
            "readable JPEG, PNG, BMP or GIF files."
        )
    return np.stack([load_image(str(path), image_size).numpy() for path in paths])


def overlay_attention(image, maps, labels, height=PANEL_HEIGHT):
    """One strip: ``image`` (H, W, 3 uint8), then each of ``maps`` (L, h, w) blended over it.

    Each panel is ``height`` pixels high (the image scaled, its aspect kept);
    a map is scaled by its maximum, upsampled bilinearly, coloured with the
    jet colour map and blended 50/50 with the image; ``labels`` name the panels.
    """
    import cv2

    width = max(1, round(image.shape[1] * height / image.shape[0]))
    base = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    panels = [base]
    for level, label in zip(maps, labels, strict=True):
        peak = float(level.max())
        scaled = level / peak if peak > 0 else np.zeros_like(level)
        heat = cv2.resize(
            scaled.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR
        )
        heat = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
        panel = cv2.addWeighted(base, 0.5, heat, 0.5, 0)
        cv2.putText(panel, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        panels.append(panel)
    gap = np.full((height, GAP, 3), 255, np.uint8)
    strip = [panels[0]]
    for panel in panels[1:]:
        strip += [gap, panel]
    return np.concatenate(strip, axis=1)


def _names(paths):
    """A distinct PNG name per image: its file name's stem, numbered where two share one."""
    names, seen = [], {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(os.fspath(path)))[0] or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}_{seen[stem]}.png")
    return names


def write_attention_maps(model, paths, out, batch_size=32):
    """Write ``out/<image name>.png`` per image: the image and its attention maps over it.

    Args:
        model: a Keras model with an "attention" output (B, L, h, w), or its .keras path.
        paths: image files (any size: each is resized to the model's input).
        out: the folder to write into (created; existing PNGs of the same names
            are replaced, each atomically).
        batch_size: images per forward pass.

    Returns:
        the written paths, in the order of ``paths``.

    Every image is read before anything is written: an unreadable one is a
    one-line error naming it, and no PNG is written.
    """
    import cv2

    from keras_reid.serving.model_io import (
        as_dict_outputs,
        check_model,
        load_keras_model,
        model_image_size,
    )

    if isinstance(model, (str, os.PathLike)):
        model = load_keras_model(model, output="attention")
    else:
        model = as_dict_outputs(model)
        check_model(model)
        if "attention" not in model.output_names:
            raise ReIDError(
                f"the model has no 'attention' output (outputs: {', '.join(model.output_names)})"
                "; draw a self-attention model (model: {name: sal})."
            )
    if not paths:
        raise ReIDError("no images given; name at least one image file.")
    images = read_images(paths, model_image_size(model))
    maps = np.asarray(model.predict(images, batch_size=batch_size, verbose=0)["attention"])
    if maps.ndim != 4:
        raise ReIDError(
            f"the model's 'attention' output has shape {maps.shape[1:]} per image; expected "
            "(levels, height, width) maps, as MultiLevelAttention gives them."
        )
    labels = _labels(model, maps.shape[1])
    written = []
    make_folder(out)
    for image, levels, name in zip(images, maps, _names(paths), strict=True):
        strip = overlay_attention(image, levels, labels)
        encoded = cv2.imencode(".png", cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))[1]
        path = os.path.join(out, name)
        with atomic_output(path, suffix=".png") as temporary, open(temporary, "wb") as stream:
            stream.write(encoded.tobytes())
        written.append(path)
    return written
