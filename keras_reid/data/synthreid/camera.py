"""One image: a person drawn into a camera's background through its optics."""

import cv2
import numpy as np

from keras_reid.data.synthreid.backgrounds import _hsv, camera_background
from keras_reid.data.synthreid.drawing import draw_person
from keras_reid.data.synthreid.specs import _SUPERSAMPLE, VIEWS


def _occlude(img, rng, ground):
    h, w = img.shape[:2]
    kind = rng.choice(3)
    if kind == 0:  # a pole or a sign post
        x, width = int(rng.uniform(0, w)), int(w * rng.uniform(0.07, 0.16))
        color = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.15, 0.6))
        cv2.rectangle(img, (x, 0), (x + width, h), tuple(float(c) for c in color), -1)
    elif kind == 1:  # a bench, a car bonnet, a railing: hides the legs
        top = int(h * rng.uniform(0.6, 0.8))
        color = ground * rng.uniform(0.4, 0.7)
        cv2.rectangle(
            img,
            (int(-w * 0.1), top),
            (int(w * rng.uniform(0.6, 1.1)), h),
            tuple(float(c) for c in color),
            -1,
        )
    else:  # a passer-by crossing the edge of the box
        side = rng.choice((-1, 1))
        cx = w * (0.5 + side * rng.uniform(0.45, 0.65))
        color = _hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8))
        cv2.ellipse(
            img,
            (int(cx), int(h * 0.55)),
            (int(w * 0.25), int(h * 0.5)),
            0,
            0,
            360,
            tuple(float(c) for c in color),
            -1,
            cv2.LINE_AA,
        )


_VIGNETTES = {}


def _vignette(height, width):
    if (height, width) not in _VIGNETTES:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        r2 = ((ys / height - 0.5) * 2) ** 2 + ((xs / width - 0.5) * 2) ** 2
        _VIGNETTES[height, width] = r2[..., None] / 2
    return _VIGNETTES[height, width]


def render_image(spec, camera, person, rng, size=(128, 64), distractor=False):
    """One crop of ``person`` as seen by ``spec.cameras[camera]``: uint8 RGB (H, W, 3).

    Args:
        spec: the :class:`PresetSpec`.
        camera: 0-based camera index.
        person: a :class:`Person`.
        rng: the image's numpy Generator (pose, framing, nuisance draws).
        size: (height, width) of the crop. Default (128, 64).
        distractor: frame it like a bad detection (off-centre, too large). Default False.

    Example:
        >>> spec = PRESETS["synth-b"]
        >>> person = sample_person(np.random.default_rng(0), spec.palette)
        >>> render_image(spec, 0, person, np.random.default_rng(1)).shape
        (128, 64, 3)
    """
    cam = spec.cameras[camera]
    height, width = size
    hi, wi = height * _SUPERSAMPLE, width * _SUPERSAMPLE
    panorama = camera_background(spec, camera, hi, wi)
    x0 = int(rng.integers(0, panorama.shape[1] - wi + 1))
    image = panorama[:, x0 : x0 + wi] * rng.uniform(0.94, 1.06)

    view = VIEWS[rng.choice(3, p=cam.views)]
    layer = draw_person(person, view, hi, wi, rng, facing=int(rng.choice((-1, 1))))
    scale = cam.scale * (1 + rng.normal(0, cam.scale_jitter))
    dx, dy = rng.normal(0, cam.shift) * wi, rng.normal(0, 0.015) * hi
    if distractor:
        scale *= rng.uniform(0.9, 1.5)
        dx = rng.uniform(-0.45, 0.45) * wi
    matrix = cv2.getRotationMatrix2D((wi / 2, hi * 0.55), rng.normal(0, 2.0), scale)
    matrix[:, 2] += (dx, dy)
    layer = cv2.warpAffine(layer, matrix, (wi, hi), flags=cv2.INTER_LINEAR)

    # A soft shadow under the feet, then the person over the scene; the layer
    # is black where empty, so its colour is already weighted by its alpha.
    feet = matrix @ np.array([wi / 2, hi * 0.98, 1.0])
    shadow = np.zeros((hi, wi), np.float32)
    cv2.ellipse(
        shadow,
        (int(feet[0]), int(feet[1])),
        (int(wi * 0.28 * scale), int(hi * 0.025)),
        0,
        0,
        360,
        1.0,
        -1,
        cv2.LINE_AA,
    )
    image = image * (1 - 0.35 * shadow)[..., None]
    alpha = layer[..., 3:].astype(np.float32) / 255
    image = image * (1 - alpha) + layer[..., :3]
    if rng.random() < cam.occlusion:
        _occlude(image, rng, panorama[hi - 2, x0 + wi // 2])

    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    image = 128 + (image - 128) * cam.contrast
    image *= cam.gain * rng.uniform(0.93, 1.07) * np.asarray(cam.cast, np.float32)
    if cam.vignette:
        image *= 1 - cam.vignette * _vignette(height, width)
    if cam.blur:
        # Blur is given for a 128-pixel-high crop, so a crop of another size looks alike.
        sigma = cam.blur * rng.uniform(0.8, 1.2) * height / 128
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    if cam.noise:
        image += rng.normal(0, cam.noise, image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)
