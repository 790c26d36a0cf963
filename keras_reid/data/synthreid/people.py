"""SynthReID's identities: the stable attributes of a person, drawn from a palette."""

import colorsys
from dataclasses import dataclass

import numpy as np

from keras_reid.data.synthreid.specs import BAGS, LOWERS, PATTERNS


@dataclass(frozen=True)
class Person:
    """The stable attributes of one identity (colours are RGB 0-255)."""

    upper: tuple
    upper2: tuple
    pattern: str
    period: float
    long_sleeves: bool
    lower: tuple
    lower_type: str
    skin: tuple
    hair: tuple
    long_hair: bool
    bag: str
    bag_color: tuple
    bag_side: int
    shoes: tuple
    height: float
    width: float
    legs: float


_SKINS = (
    (250, 222, 196),
    (238, 196, 160),
    (222, 170, 128),
    (194, 136, 96),
    (141, 90, 58),
    (96, 62, 42),
)
_HAIRS = (
    (22, 18, 16),
    (58, 40, 28),
    (105, 72, 44),
    (196, 160, 100),
    (150, 150, 150),
    (130, 58, 30),
)
_SHOES = ((25, 25, 25), (235, 235, 235), (95, 60, 35), (120, 120, 125))


def _jitter(rng, color, amount=12):
    return tuple(int(np.clip(c + rng.normal(0, amount), 0, 255)) for c in color)


def _garment(rng, palette):
    if rng.random() < palette.achromatic:
        level = rng.choice((0.1, 0.22, 0.45, 0.7, 0.92)) + rng.normal(0, 0.04)
        return _jitter(rng, (255 * np.clip(level, 0, 1),) * 3, 6)
    weights = np.asarray(palette.hues, float)
    hue = (rng.choice(6, p=weights / weights.sum()) + rng.random()) / 6.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(*palette.saturation), rng.uniform(*palette.value))
    return tuple(int(255 * c) for c in rgb)


def _distinct(rng, palette, other):
    # A pattern needs a second colour that differs from the first, or it vanishes.
    for _ in range(20):
        color = _garment(rng, palette)
        if sum(abs(a - b) for a, b in zip(color, other, strict=True)) > 150:
            return color
    return tuple(255 - c for c in other)


def sample_person(rng, palette):
    """Draw one identity's :class:`Person` from a :class:`PaletteSpec`."""
    upper = _garment(rng, palette)
    return Person(
        upper=upper,
        upper2=_distinct(rng, palette, upper),
        pattern=PATTERNS[rng.choice(4, p=palette.patterns)],
        period=float(rng.uniform(0.03, 0.05)),
        long_sleeves=bool(rng.random() < palette.long_sleeves),
        lower=_garment(rng, palette),
        lower_type=LOWERS[rng.choice(3, p=palette.lowers)],
        skin=_jitter(rng, _SKINS[rng.integers(len(_SKINS))], 8),
        hair=_jitter(rng, _HAIRS[rng.integers(len(_HAIRS))], 10),
        long_hair=bool(rng.random() < palette.long_hair),
        bag=BAGS[rng.choice(4, p=palette.bags)],
        bag_color=_garment(rng, palette),
        bag_side=int(rng.choice((-1, 1))),
        shoes=_jitter(
            rng,
            _SHOES[rng.integers(len(_SHOES))] if rng.random() < 0.75 else _garment(rng, palette),
            10,
        ),
        height=float(rng.uniform(0.92, 1.04)),
        width=float(rng.uniform(0.85, 1.2)),
        legs=float(rng.uniform(0.44, 0.5)),
    )
