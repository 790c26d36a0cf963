"""SynthReID's specifications: a camera's nuisance, a palette, a preset; the random streams."""

import zlib
from dataclasses import dataclass

import numpy as np

from keras_reid.errors import ReIDError

# Bump when the pixels a (preset, seed, ids, size) produce change: cached
# folders of another version are then regenerated rather than silently reused.
VERSION = 1
META_FILE = "synthreid.json"
SPLITS = ("bounding_box_train", "query", "bounding_box_test")
BACKGROUNDS = ("street", "indoor", "brick", "glass", "gradient", "grass", "station", "night")
VIEWS = ("front", "back", "side")
PATTERNS = ("plain", "stripes", "checks", "logo")
BAGS = ("none", "backpack", "shoulder", "handbag")
LOWERS = ("trousers", "shorts", "skirt")

# Tags that keep the random streams of different purposes apart.
_SPLIT, _PLAN, _PERSON, _IMAGE, _DISTRACTOR, _BACKGROUND = range(1, 7)
# Images are drawn at twice the output size and reduced with INTER_AREA:
# cheap anti-aliasing that keeps thin straps and stripes visible.
_SUPERSAMPLE = 2


def _check_probabilities(owner, field, values, names):
    if len(values) != len(names) or min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise ReIDError(
            f"{owner}: {field} must be {len(names)} probabilities summing to 1 "
            f"({', '.join(names)}). Received: {field}={values}"
        )


@dataclass(frozen=True)
class CameraSpec:
    """One camera's systematic nuisance.

    Args:
        background: the scene family, one of ``BACKGROUNDS``.
        gain: illumination gain applied to the whole image. Default 1.0.
        cast: per-channel (R, G, B) gain: white balance / colour of the light.
            Default (1.0, 1.0, 1.0).
        contrast: contrast around mid-grey; < 1 washes out (haze, glare). Default 1.0.
        vignette: darkening of the corners, 0 (none) to 1. Default 0.0.
        blur: Gaussian blur sigma in pixels of a 128-pixel-high crop. Default 0.0.
        noise: sensor noise standard deviation (0-255 scale). Default 2.0.
        jpeg: JPEG quality (each image +-5). Default 90.
        scale: person height relative to the crop (detector tightness). Default 0.95.
        scale_jitter: relative standard deviation of that scale per image. Default 0.04.
        shift: horizontal position standard deviation, as a fraction of the width.
            Default 0.04.
        views: probabilities of the (front, back, side) views. Default (0.4, 0.4, 0.2).
        occlusion: probability of an occluder (pole, low box, passer-by). Default 0.05.

    Example:
        >>> CameraSpec("night", gain=0.6, cast=(1.25, 0.95, 0.6), blur=1.0, noise=9)
    """

    background: str
    gain: float = 1.0
    cast: tuple = (1.0, 1.0, 1.0)
    contrast: float = 1.0
    vignette: float = 0.0
    blur: float = 0.0
    noise: float = 2.0
    jpeg: int = 90
    scale: float = 0.95
    scale_jitter: float = 0.04
    shift: float = 0.04
    views: tuple = (0.4, 0.4, 0.2)
    occlusion: float = 0.05

    def __post_init__(self):
        if self.background not in BACKGROUNDS:
            raise ReIDError(
                f"CameraSpec: unknown background {self.background!r}; expected one of: "
                f"{', '.join(BACKGROUNDS)}."
            )
        _check_probabilities("CameraSpec", "views", self.views, VIEWS)


@dataclass(frozen=True)
class PaletteSpec:
    """How a preset's people dress: the identity attribute distribution.

    Args:
        hues: weights of the six 60-degree hue sectors (red, yellow, green,
            cyan, blue, magenta) for coloured garments.
        achromatic: probability that a garment is black, grey or white.
        saturation: (low, high) saturation of coloured garments.
        value: (low, high) brightness of garments.
        patterns: probabilities of the upper garment's pattern, see ``PATTERNS``.
        bags: probabilities of the bag types, see ``BAGS``.
        lowers: probabilities of trousers, shorts and skirt, see ``LOWERS``.
        long_sleeves: probability of long sleeves.
        long_hair: probability of long hair.

    Example:
        >>> PaletteSpec(hues=(1, 1, 1, 1, 1, 1), achromatic=0.3, saturation=(0.4, 0.9),
        ...             value=(0.35, 0.95), patterns=(0.5, 0.2, 0.15, 0.15),
        ...             bags=(0.4, 0.25, 0.2, 0.15), lowers=(0.7, 0.15, 0.15),
        ...             long_sleeves=0.5, long_hair=0.35)
    """

    hues: tuple
    achromatic: float
    saturation: tuple
    value: tuple
    patterns: tuple
    bags: tuple
    lowers: tuple
    long_sleeves: float
    long_hair: float

    def __post_init__(self):
        _check_probabilities("PaletteSpec", "patterns", self.patterns, PATTERNS)
        _check_probabilities("PaletteSpec", "bags", self.bags, BAGS)
        _check_probabilities("PaletteSpec", "lowers", self.lowers, LOWERS)


@dataclass(frozen=True)
class PresetSpec:
    """A SynthReID domain: its cameras, its people and the split sizes.

    Args:
        name: the preset's (and the dataset's) name.
        description: one line for listings.
        cameras: one :class:`CameraSpec` per camera (2 to 9: Market names
            have one digit for the camera).
        palette: the :class:`PaletteSpec` of its people.
        ids: default number of identities (half train, half test). Default 300.
        cameras_per_id: (min, max) cameras an identity appears in, min >= 2.
            Default (3, 6).
        images_per_camera: (min, max) images of an identity in one camera.
            Default (2, 5).
        distractors: distractor images (pid 0) per test identity. Default 0.5.

    Example:
        >>> spec = PRESETS["synth-a"]
        >>> len(spec.cameras), spec.ids
        (6, 300)
    """

    name: str
    description: str
    cameras: tuple
    palette: PaletteSpec
    ids: int = 300
    cameras_per_id: tuple = (3, 6)
    images_per_camera: tuple = (2, 5)
    distractors: float = 0.5

    def __post_init__(self):
        count = len(self.cameras)
        low, high = self.cameras_per_id
        if not 2 <= count <= 9:
            raise ReIDError(f"{self.name}: needs 2 to 9 cameras. Received: cameras={count}")
        if not 2 <= low <= high <= count:
            raise ReIDError(
                f"{self.name}: cameras_per_id must satisfy 2 <= min <= max <= {count} "
                f"cameras. Received: cameras_per_id={self.cameras_per_id}"
            )
        if not 1 <= self.images_per_camera[0] <= self.images_per_camera[1]:
            raise ReIDError(
                f"{self.name}: images_per_camera must satisfy 1 <= min <= max. "
                f"Received: images_per_camera={self.images_per_camera}"
            )


# --------------------------------------------------------------------------
# Random streams


def _code(name):
    return zlib.crc32(name.encode("utf-8"))


def _rng(*keys):
    return np.random.default_rng([int(k) for k in keys])
