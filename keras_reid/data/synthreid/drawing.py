"""Drawing one pedestrian (front, back or side view) on a supersampled canvas."""

import cv2
import numpy as np


class _Canvas:
    """An RGB layer, its alpha, and the mask of the upper garment (for its pattern)."""

    def __init__(self, height, width, unit, cx, top):
        self.rgb = np.zeros((height, width, 3), np.uint8)
        self.alpha = np.zeros((height, width), np.uint8)
        self.upper = np.zeros((height, width), np.uint8)
        self.unit, self.cx, self.top = unit, cx, top
        self.flip = 1

    def pt(self, x, y):
        """Pixel of a point given in person heights from the head top, x from the axis."""
        return (
            int(round(self.cx + self.flip * x * self.unit)),
            int(round(self.top + y * self.unit)),
        )

    def size(self, value):
        return max(1, int(round(value * self.unit)))

    def _draw(self, draw, color, upper):
        draw(self.rgb, tuple(int(c) for c in color))
        draw(self.alpha, 255)
        # A non-garment shape drawn over the garment removes it from the pattern mask.
        draw(self.upper, 255 if upper else 0)

    def poly(self, points, color, upper=False):
        pts = np.array([self.pt(x, y) for x, y in points], np.int32)
        self._draw(lambda img, c: cv2.fillPoly(img, [pts], c, cv2.LINE_AA), color, upper)

    def line(self, p, q, width, color, upper=False):
        a, b, t = self.pt(*p), self.pt(*q), self.size(width)
        self._draw(lambda img, c: cv2.line(img, a, b, c, t, cv2.LINE_AA), color, upper)

    def ellipse(self, center, axes, color, upper=False):
        c0, ax = self.pt(*center), (self.size(axes[0]), self.size(axes[1]))
        self._draw(
            lambda img, c: cv2.ellipse(img, c0, ax, 0, 0, 360, c, -1, cv2.LINE_AA), color, upper
        )

    def rect(self, x0, y0, x1, y1, color, upper=False):
        self.poly(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), color, upper)


def _shade(color, factor):
    return tuple(min(255, int(c * factor)) for c in color)


def _limb(canvas, start, angle, length, width, color, upper=False):
    """A straight limb from ``start`` at ``angle`` (radians from straight down)."""
    end = (start[0] + length * np.sin(angle), start[1] + length * np.cos(angle))
    canvas.line(start, end, width, color, upper)
    return end


def _arm(canvas, person, shoulder, angle, shade=1.0):
    # Short sleeves stop a third of the way down the arm; the rest is skin.
    # Lengths are in person heights (see _Canvas.pt).
    aw = 0.058 * person.width
    sleeve = 0.33 if person.long_sleeves else 0.11
    skin = _shade(person.skin, shade)
    # Sleeves a shade darker than the chest, so the arms read against the torso.
    elbow = _limb(
        canvas, shoulder, angle, sleeve, aw, _shade(person.upper, 0.88 * shade), upper=True
    )
    if not person.long_sleeves:
        _limb(canvas, elbow, angle, 0.33 - sleeve, aw * 0.8, skin)
    wrist = (shoulder[0] + 0.33 * np.sin(angle), shoulder[1] + 0.33 * np.cos(angle))
    canvas.ellipse((wrist[0], wrist[1] + 0.012), (0.022, 0.026), skin)
    return wrist


def _leg(canvas, person, hip, angle, length, shade=1.0):
    lw = 0.075 * person.width
    lower, skin = _shade(person.lower, shade), _shade(person.skin, shade)
    knee_at = 0.45 if person.lower_type == "shorts" else 0.0
    if person.lower_type == "trousers":
        ankle = _limb(canvas, hip, angle, length, lw, lower)
    else:
        ankle = _limb(canvas, hip, angle, length, lw * 0.75, skin)
        if knee_at:
            _limb(canvas, hip, angle, length * knee_at, lw * 1.05, lower)
    return ankle


def _shoe(canvas, person, ankle, forward):
    canvas.ellipse(
        (ankle[0] + forward * 0.018, ankle[1] + 0.012),
        (0.032 + abs(forward) * 0.012, 0.018),
        person.shoes,
    )


def _draw_front_back(canvas, person, view, rng):
    back = view == "back"
    w = person.width
    y_sh, y_hip, y_ank = 0.16, 1.0 - person.legs - 0.045, 0.965
    sh, hh = 0.118 * w, 0.092 * w
    spread = rng.uniform(0.0, 0.035)
    out = rng.uniform(0.05, 0.16)
    swing = rng.normal(0, 0.05)

    if person.long_hair and not back:
        canvas.rect(-0.062, 0.06, 0.062, y_sh + 0.06, person.hair)
    # Legs, with a waist block so that trousers join at the hip.
    ankles = []
    for side in (-1, 1):
        hip = (side * hh * 0.48, y_hip)
        ankles.append(_leg(canvas, person, hip, -side * spread, y_ank - y_hip))
    if person.lower_type == "skirt":
        canvas.poly(
            (
                (-hh, y_hip - 0.02),
                (hh, y_hip - 0.02),
                (hh * 1.45, y_hip + 0.2),
                (-hh * 1.45, y_hip + 0.2),
            ),
            person.lower,
        )
    else:
        canvas.rect(-hh * 0.95, y_hip - 0.02, hh * 0.95, y_hip + 0.07, person.lower)
    for ankle in ankles:
        _shoe(canvas, person, ankle, 0.0)
    if person.bag == "backpack" and not back:
        # Seen from the front, the top of the pack shows above the shoulders.
        canvas.rect(-sh * 0.75, y_sh - 0.03, sh * 0.75, y_sh + 0.04, _shade(person.bag_color, 0.8))
    # Neck, torso and sleeves: the upper garment.
    canvas.rect(-0.022, 0.11, 0.022, y_sh + 0.02, person.skin)
    canvas.poly(
        ((-sh, y_sh), (sh, y_sh), (hh * 1.05, y_hip + 0.03), (-hh * 1.05, y_hip + 0.03)),
        person.upper,
        upper=True,
    )
    canvas.ellipse((0, y_sh + 0.005), (sh * 0.92, 0.02), person.upper, upper=True)
    wrists = {}
    for side in (-1, 1):
        shoulder = (side * (sh - 0.03 * w), y_sh + 0.025)
        wrists[side] = _arm(canvas, person, shoulder, side * out + swing * side)
    _apply_pattern(canvas, person)
    # Head and hair.
    if back:
        canvas.ellipse((0, 0.068), (0.05, 0.066), person.hair)
        if person.long_hair:
            canvas.poly(
                ((-0.058, 0.07), (0.058, 0.07), (0.062, y_sh + 0.11), (-0.062, y_sh + 0.11)),
                person.hair,
            )
    else:
        canvas.ellipse((0, 0.062), (0.053, 0.064), person.hair)
        canvas.ellipse((0, 0.078), (0.045, 0.056), person.skin)
        if person.pattern == "logo":
            canvas.rect(-0.05, y_sh + 0.05, 0.05, y_sh + 0.13, person.upper2)
    _draw_bag(canvas, person, view, y_sh, y_hip, sh, hh, wrists)


def _draw_side(canvas, person, rng):
    w = person.width
    y_sh, y_hip, y_ank = 0.16, 1.0 - person.legs - 0.045, 0.965
    dsh, dhip = 0.07 * w, 0.06 * w
    stride = rng.uniform(0.05, 0.32)
    length = (y_ank - y_hip) / np.cos(stride)

    if person.bag == "backpack":
        canvas.rect(-dsh - 0.075, y_sh + 0.01, -dsh + 0.02, y_sh + 0.22, person.bag_color)
    shoulder = (0.0, y_sh + 0.025)
    _arm(canvas, person, shoulder, stride * 0.8, shade=0.8)
    back_ankle = _leg(canvas, person, (0, y_hip), -stride, length, shade=0.82)
    _shoe(canvas, person, back_ankle, 1.0)
    front_ankle = _leg(canvas, person, (0, y_hip), stride, length)
    _shoe(canvas, person, front_ankle, 1.0)
    if person.lower_type == "skirt":
        canvas.poly(
            (
                (-dhip, y_hip - 0.02),
                (dhip, y_hip - 0.02),
                (dhip * 1.8, y_hip + 0.2),
                (-dhip * 1.8, y_hip + 0.2),
            ),
            person.lower,
        )
    else:
        canvas.rect(-dhip, y_hip - 0.02, dhip, y_hip + 0.06, person.lower)
    canvas.rect(-0.02, 0.11, 0.024, y_sh + 0.02, person.skin)
    canvas.poly(
        ((-dsh, y_sh), (dsh, y_sh), (dhip * 1.05, y_hip + 0.03), (-dhip * 1.05, y_hip + 0.03)),
        person.upper,
        upper=True,
    )
    canvas.ellipse((0, y_sh + 0.01), (dsh, 0.022), person.upper, upper=True)
    wrist = _arm(canvas, person, shoulder, -stride * 0.8)
    _apply_pattern(canvas, person)
    # Profile facing +x: hair covers the back and top of the head.
    canvas.ellipse((0.004, 0.068), (0.05, 0.066), person.skin)
    canvas.poly(((0.05, 0.075), (0.064, 0.09), (0.048, 0.095)), person.skin)
    canvas.ellipse((-0.012, 0.056), (0.046, 0.056), person.hair)
    if person.long_hair:
        canvas.rect(-0.056, 0.06, -0.01, y_sh + 0.09, person.hair)
    _draw_bag(canvas, person, "side", y_sh, y_hip, dsh, dhip, {1: wrist, -1: wrist})


def _draw_bag(canvas, person, view, y_sh, y_hip, sh, hh, wrists):
    color, side = person.bag_color, person.bag_side
    if person.bag == "backpack":
        if view == "back":
            canvas.rect(-sh * 0.78, y_sh + 0.01, sh * 0.78, y_sh + 0.24, color)
            canvas.rect(-sh * 0.6, y_sh + 0.15, sh * 0.6, y_sh + 0.22, _shade(color, 0.75))
        else:
            for s in (-1, 1) if view == "front" else (1,):
                x = s * sh * 0.55 if view == "front" else 0.0
                canvas.line((x, y_sh), (x * 1.15, y_sh + 0.2), 0.018, _shade(color, 0.8))
    elif person.bag == "shoulder":
        bag_x = side * (hh + 0.02) if view != "side" else 0.02
        canvas.line(
            (-side * sh * 0.6 if view != "side" else -0.03, y_sh + 0.005),
            (bag_x, y_hip - 0.02),
            0.014,
            _shade(color, 0.7),
        )
        canvas.rect(bag_x - 0.05, y_hip - 0.05, bag_x + 0.05, y_hip + 0.07, color)
    elif person.bag == "handbag":
        wx, wy = wrists[side]
        canvas.line((wx, wy), (wx, wy + 0.03), 0.008, _shade(color, 0.7))
        canvas.rect(wx - 0.04, wy + 0.025, wx + 0.04, wy + 0.1, color)


def _apply_pattern(canvas, person):
    if person.pattern not in ("stripes", "checks"):
        return
    height, width = canvas.upper.shape
    period = max(2.0, person.period * canvas.unit)
    ys = ((np.arange(height) - canvas.top) // period).astype(np.int64)
    if person.pattern == "stripes":
        on = np.broadcast_to((ys % 2 == 1)[:, None], (height, width))
    else:
        xs = ((np.arange(width) - canvas.cx) // period).astype(np.int64)
        on = (ys[:, None] + xs[None, :]) % 2 == 1
    mask = (canvas.upper > 127) & on
    canvas.rgb[mask] = person.upper2


def draw_person(person, view, height, width, rng, facing=1):
    """An RGBA image (uint8) of ``person`` seen from ``view``, centred, feet near the bottom.

    Args:
        person: a :class:`Person`.
        view: "front", "back" or "side".
        height, width: canvas size in pixels.
        rng: numpy Generator for the pose (stride, arm swing, stance).
        facing: +1 faces right in the side view, -1 left.
    """
    unit = 0.92 * height * person.height
    canvas = _Canvas(height, width, unit, width / 2.0, height - unit - 0.02 * height)
    if view == "side":
        canvas.flip = facing
        _draw_side(canvas, person, rng)
    else:
        _draw_front_back(canvas, person, view, rng)
    return np.dstack([canvas.rgb, canvas.alpha])
