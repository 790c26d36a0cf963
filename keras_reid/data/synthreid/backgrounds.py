"""Backgrounds: one panorama per camera, of which each image shows a window."""

import colorsys

import cv2
import numpy as np

from keras_reid.data.synthreid.specs import _BACKGROUND, _code, _rng


def _hsv(h, s, v):
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32) * 255


def _smooth_noise(rng, height, width, cell):
    small = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _bands(img, y0, y1, color, spacing, darker=0.85, grow=1.0):
    """Horizontal bands (paving, floorboards); ``grow`` > 1 widens them downwards."""
    img[y0:y1] = color
    y, step = float(y0), spacing
    while y < y1:
        cv2.line(
            img,
            (0, int(y)),
            (img.shape[1], int(y)),
            tuple(float(c) for c in color * darker),
            max(1, int(spacing * 0.12)),
        )
        y += step
        step *= grow


def _bg_street(rng, h, w):
    img = np.empty((h, w, 3), np.float32)
    facade = _hsv(rng.uniform(0, 1), rng.uniform(0.08, 0.35), rng.uniform(0.5, 0.8))
    y_pave, y_road = int(h * rng.uniform(0.5, 0.6)), int(h * rng.uniform(0.86, 0.93))
    img[:y_pave] = facade
    window = facade * rng.uniform(0.3, 0.55)
    step = int(h * 0.17)
    for x in range(int(rng.integers(0, step)), w, step):
        for y in range(int(h * 0.04), y_pave - int(h * 0.12), int(h * 0.2)):
            lit = rng.random() < 0.25
            cv2.rectangle(
                img,
                (x, y),
                (x + int(h * 0.08), y + int(h * 0.12)),
                tuple(float(c) for c in (facade * 1.15 if lit else window)),
                -1,
            )
    pave = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.12), rng.uniform(0.55, 0.75))
    _bands(img, y_pave, y_road, pave, h * 0.05)
    img[y_road : y_road + max(2, h // 60)] = pave * 1.2
    img[y_road + max(2, h // 60) :] = pave * 0.45
    return img + 10 * _smooth_noise(rng, h, w, 8)[..., None]


def _bg_indoor(rng, h, w):
    img = np.empty((h, w, 3), np.float32)
    wall = _hsv(rng.uniform(0, 1), rng.uniform(0.08, 0.3), rng.uniform(0.72, 0.92))
    y_floor = int(h * rng.uniform(0.7, 0.8))
    img[:y_floor] = wall
    door = _hsv(rng.uniform(0.03, 0.12), rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.55))
    x = int(rng.integers(0, h // 2))
    while x < w:
        if rng.random() < 0.6:
            cv2.rectangle(
                img,
                (x, int(h * 0.22)),
                (x + int(h * 0.22), y_floor),
                tuple(float(c) for c in door),
                -1,
            )
            cv2.rectangle(
                img,
                (x, int(h * 0.22)),
                (x + int(h * 0.22), y_floor),
                tuple(float(c) for c in door * 0.6),
                max(1, h // 80),
            )
        else:
            poster = _hsv(rng.uniform(0, 1), rng.uniform(0.4, 0.8), rng.uniform(0.5, 0.9))
            cv2.rectangle(
                img,
                (x, int(h * 0.25)),
                (x + int(h * 0.16), int(h * 0.45)),
                tuple(float(c) for c in poster),
                -1,
            )
        x += int(h * rng.uniform(0.4, 0.8))
    floor = _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.2, 0.5), rng.uniform(0.4, 0.65))
    _bands(img, y_floor, h, floor, h * 0.025, 0.8, grow=1.35)
    img[y_floor : y_floor + max(2, h // 50)] = wall * 0.35
    return img + 5 * _smooth_noise(rng, h, w, 16)[..., None]


def _bg_brick(rng, h, w):
    brick = _hsv(rng.uniform(0.0, 0.07), rng.uniform(0.45, 0.7), rng.uniform(0.45, 0.65))
    mortar = _hsv(0.1, 0.1, rng.uniform(0.6, 0.8))
    bh, bw = max(4, int(h * 0.04)), max(8, int(h * 0.1))
    ys, xs = np.mgrid[0:h, 0:w]
    row = ys // bh
    col = (xs + (row % 2) * (bw // 2)) // bw
    tint = 1.0 + 0.12 * rng.standard_normal((64, 64)).astype(np.float32)
    img = brick[None, None, :] * tint[row % 64, col % 64][..., None]
    joints = (ys % bh < max(1, bh // 5)) | ((xs + (row % 2) * (bw // 2)) % bw < max(1, bw // 12))
    img[joints] = mortar
    y_pave = int(h * rng.uniform(0.78, 0.85))
    _bands(img, y_pave, h, _hsv(0, 0, rng.uniform(0.5, 0.65)), h * 0.05)
    return img


def _bg_glass(rng, h, w):
    img = np.empty((h, w, 3), np.float32)
    frame = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.3), rng.uniform(0.15, 0.35))
    glass = _hsv(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.3), rng.uniform(0.55, 0.8))
    y_floor = int(h * rng.uniform(0.8, 0.88))
    img[:y_floor] = frame
    panel = int(h * 0.3)
    for x in range(int(rng.integers(0, panel)) - panel, w, panel):
        inner = glass * rng.uniform(0.85, 1.1)
        cv2.rectangle(
            img,
            (x + 4, int(h * 0.05)),
            (x + panel - 4, y_floor - 6),
            tuple(float(c) for c in inner),
            -1,
        )
        for _ in range(3):
            goods = _hsv(rng.uniform(0, 1), rng.uniform(0.3, 0.8), rng.uniform(0.4, 0.9))
            gx, gy = x + int(rng.integers(8, max(9, panel - 20))), int(h * rng.uniform(0.3, 0.6))
            cv2.rectangle(
                img,
                (gx, gy),
                (gx + int(h * 0.06), gy + int(h * 0.1)),
                tuple(float(c) for c in goods),
                -1,
            )
    ys, xs = np.mgrid[0:h, 0:w]
    reflection = ((xs + ys * 0.6) % (h * 0.35)) < h * 0.06
    img[:y_floor][reflection[:y_floor]] *= 1.18
    img[y_floor:] = _hsv(0.1, 0.05, rng.uniform(0.7, 0.85))
    return img


def _bg_gradient(rng, h, w):
    top = _hsv(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.4), rng.uniform(0.75, 0.95))
    ground = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.1, 0.35), rng.uniform(0.45, 0.7))
    horizon = rng.uniform(0.45, 0.65)
    t = np.clip((np.linspace(0, 1, h) - horizon) / 0.08 + 0.5, 0, 1)[:, None, None]
    img = (1 - t) * top + t * ground * (0.85 + 0.3 * np.linspace(0, 1, h)[:, None, None])
    img = np.broadcast_to(img, (h, w, 3)).astype(np.float32)
    return img + 12 * _smooth_noise(rng, h, w, 24)[..., None]


def _bg_grass(rng, h, w):
    foliage = _hsv(rng.uniform(0.22, 0.35), rng.uniform(0.4, 0.7), rng.uniform(0.2, 0.4))
    grass = _hsv(rng.uniform(0.2, 0.3), rng.uniform(0.45, 0.75), rng.uniform(0.4, 0.6))
    path = _hsv(rng.uniform(0.08, 0.12), rng.uniform(0.2, 0.4), rng.uniform(0.55, 0.7))
    img = np.empty((h, w, 3), np.float32)
    y_grass, y_path = int(h * rng.uniform(0.35, 0.5)), int(h * rng.uniform(0.78, 0.84))
    blobs = _smooth_noise(rng, y_grass, w, 12)[..., None]
    img[:y_grass] = foliage * (1 + 0.35 * blobs)
    img[y_grass:] = grass
    img[y_path:] = path
    fine = rng.standard_normal((h, w)).astype(np.float32)[..., None]
    img[y_grass:y_path] *= 1 + 0.12 * fine[y_grass:y_path]
    return img + 6 * _smooth_noise(rng, h, w, 6)[..., None]


def _bg_station(rng, h, w):
    tile = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.25), rng.uniform(0.75, 0.92))
    band = _hsv(rng.uniform(0, 1), rng.uniform(0.6, 0.9), rng.uniform(0.5, 0.8))
    img = np.empty((h, w, 3), np.float32)
    img[:] = tile
    size = max(4, int(h * 0.045))
    ys, xs = np.mgrid[0:h, 0:w]
    img[(ys % size == 0) | (xs % size == 0)] *= 0.75
    y_band = int(h * rng.uniform(0.25, 0.4))
    img[y_band : y_band + int(h * 0.05)] = band
    y_floor = int(h * rng.uniform(0.75, 0.82))
    img[y_floor:] = _hsv(0, 0, rng.uniform(0.4, 0.55))
    img[y_floor + int(h * 0.05) : y_floor + int(h * 0.07)] = _hsv(0.14, 0.85, 0.85)
    return img


def _bg_night(rng, h, w):
    sky = _hsv(rng.uniform(0.58, 0.7), rng.uniform(0.3, 0.6), rng.uniform(0.08, 0.16))
    img = np.empty((h, w, 3), np.float32)
    img[:] = sky
    y_ground = int(h * rng.uniform(0.65, 0.75))
    for _ in range(max(2, w // 40)):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, y_ground - h // 8))
        cv2.rectangle(
            img,
            (x, y),
            (x + h // 14, y + h // 10),
            tuple(float(c) for c in _hsv(0.12, 0.6, rng.uniform(0.5, 0.8))),
            -1,
        )
    img[y_ground:] = _hsv(0.6, 0.2, 0.18)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    glow = np.zeros((h, w), np.float32)
    for x in range(int(rng.integers(0, h // 2)), w, int(h * 0.7)):
        glow += np.exp(-(((xs - x) / (h * 0.25)) ** 2 + ((ys - h * 0.15) / (h * 0.35)) ** 2))
    lamp = _hsv(rng.uniform(0.08, 0.14), 0.6, 1.0)
    return img + 0.55 * glow[..., None] * lamp + 6 * _smooth_noise(rng, h, w, 10)[..., None]


_BACKGROUND_DRAWERS = {
    "street": _bg_street,
    "indoor": _bg_indoor,
    "brick": _bg_brick,
    "glass": _bg_glass,
    "gradient": _bg_gradient,
    "grass": _bg_grass,
    "station": _bg_station,
    "night": _bg_night,
}
_PANORAMAS = {}


def camera_background(spec, camera, height, width):
    """The camera's scene, three crops wide (float32 RGB), cached per process.

    A camera's look belongs to the preset, not to the seed: it is seeded by
    (preset, camera) only, so every seed samples the same domain.
    """
    key = (spec.name, spec.cameras[camera], camera, height, width)
    if key not in _PANORAMAS:
        rng = _rng(_code(spec.name), _BACKGROUND, camera)
        drawer = _BACKGROUND_DRAWERS[spec.cameras[camera].background]
        # C order matters: cv2 draws occluders in place on crops of it.
        panorama = np.clip(drawer(rng, height, 3 * width), 0, 255)
        _PANORAMAS[key] = np.ascontiguousarray(panorama, dtype=np.float32)
    return _PANORAMAS[key]
