"""Training-time image augmentation: TensorFlow ops, seeded, on one image or a batch.

:class:`Augment` is the configuration and the function. The default is the
TriNet recipe (Hermans et al., "In Defense of the Triplet Loss for Person
Re-Identification", 2017, section 4.3): a horizontal flip with probability
0.5 and a random crop of the image size out of a copy resized by 1.125.
Shift, zoom and Gaussian blur are there for papers that add them; they are
off by default.

Every random draw is stateless and comes from the ``seed`` passed in, so the
same seed gives the same augmentation, whatever the thread or the run.
"""

import math
from dataclasses import asdict, dataclass, fields

import tensorflow as tf

from keras_reid.errors import ReIDError


@dataclass(frozen=True)
class Augment:
    """Augmentation settings; calling the object augments images.

    Args:
        flip: probability of a horizontal flip. Default 0.5.
        crop_pad: resize to ``(1 + crop_pad)`` times the image size, then crop the
            image size back at a random position (the TriNet recipe). Default
            0.125; 0 turns it off.
        shift: largest translation, as a fraction of the height and the width,
            drawn uniformly in ``[-shift, shift]`` for each axis; uncovered pixels
            are black. Default 0 (off).
        zoom: scale drawn uniformly in ``[1 - zoom, 1 + zoom]`` (above 1 zooms
            in); when zooming out the border is black. Default 0 (off).
        blur: probability of a Gaussian blur. Default 0 (off).
        blur_sigma: ``(low, high)`` range of the blur's standard deviation, in
            pixels of the output image, drawn uniformly. Default ``(0.1, 2.0)``.

    The crop, shift and zoom are applied together as one bilinear
    ``tf.image.crop_and_resize`` box per image: the same geometry as resizing
    then cropping, without resampling the image twice.

    Example:
        >>> augment = Augment(flip=0.5, crop_pad=0.125, blur=0.2)
        >>> images = augment(images, seed=tf.constant([1, 2]))  # [B, H, W, 3] float32
    """

    flip: float = 0.5
    crop_pad: float = 0.125
    shift: float = 0.0
    zoom: float = 0.0
    blur: float = 0.0
    blur_sigma: tuple = (0.1, 2.0)

    def __post_init__(self):
        for name in ("flip", "blur"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ReIDError(
                    f"Augment: {name} is a probability in [0, 1]. Received: {name}={value}"
                )
        for name, upper in (("crop_pad", math.inf), ("shift", 0.5), ("zoom", 0.9)):
            value = getattr(self, name)
            if not 0.0 <= value <= upper:
                raise ReIDError(
                    f"Augment: {name} must be in [0, {upper}]. Received: {name}={value}"
                )
        low, high = self.blur_sigma
        if not 0.0 < low <= high:
            raise ReIDError(
                f"Augment: blur_sigma is (low, high) with 0 < low <= high. "
                f"Received: blur_sigma={self.blur_sigma}"
            )
        # Frozen dataclass: a YAML list must still compare and hash as a tuple.
        object.__setattr__(self, "blur_sigma", (float(low), float(high)))

    def get_config(self):
        """The constructor arguments as a dict (``Augment(**config)`` rebuilds it)."""
        return asdict(self)

    def __call__(self, images, seed):
        """Augment ``images`` (float32 ``[H, W, 3]`` or ``[B, H, W, 3]``, any value range).

        Args:
            images: one image or a batch; each image of a batch gets its own draws.
            seed: an int32/int64 tensor of shape ``[2]`` (a stateless seed).

        Returns:
            float32 images of the same shape.
        """
        images = tf.convert_to_tensor(images, tf.float32)
        if images.shape.rank == 3:
            return self(images[None], seed)[0]
        seeds = tf.random.split(tf.cast(seed, tf.int64), 3)
        count = tf.shape(images)[0]
        if self.crop_pad or self.shift or self.zoom:
            images = self._geometry(images, count, seeds[0])
        if self.flip:
            flipped = tf.random.stateless_uniform([count], seeds[1]) < self.flip
            images = tf.where(flipped[:, None, None, None], tf.reverse(images, [2]), images)
        if self.blur:
            images = self._blur(images, count, seeds[2])
        return images

    def _geometry(self, images, count, seed):
        # One normalised box per image, built around the centre: the crop
        # shrinks it and moves it inside the image, the zoom scales it, the
        # shift moves it (possibly beyond the edges, where crop_and_resize
        # fills with extrapolation_value).
        u = tf.random.stateless_uniform([5, count], seed)
        size = tf.fill([count], 1.0 / (1.0 + self.crop_pad))
        room = 1.0 - size
        center_y = size / 2 + u[0] * room
        center_x = size / 2 + u[1] * room
        scale = 1.0 + self.zoom * (2.0 * u[2] - 1.0)
        height = width = size / scale
        center_y += self.shift * (2.0 * u[3] - 1.0) * height
        center_x += self.shift * (2.0 * u[4] - 1.0) * width
        boxes = tf.stack(
            [
                center_y - height / 2,
                center_x - width / 2,
                center_y + height / 2,
                center_x + width / 2,
            ],
            axis=1,
        )
        return tf.image.crop_and_resize(
            images,
            boxes,
            tf.range(count),
            crop_size=tf.shape(images)[1:3],
            method="bilinear",
            extrapolation_value=0.0,
        )

    def _blur(self, images, count, seed):
        # A separable Gaussian with one kernel per image: the batch is folded
        # into the channels so that a single depthwise convolution applies
        # each image's kernel. Images that are not blurred get a unit impulse,
        # which leaves them exactly as they were.
        apply_seed, sigma_seed = tf.unstack(tf.random.split(seed, 2))
        applied = tf.random.stateless_uniform([count], apply_seed) < self.blur
        low, high = self.blur_sigma
        sigma = tf.random.stateless_uniform([count], sigma_seed, low, high)
        height, width = images.shape[1], images.shape[2]
        radius = math.ceil(3.0 * high)
        if height is not None and width is not None:
            # SYMMETRIC padding cannot exceed the image; a tiny image gets a
            # truncated kernel, renormalised below.
            radius = max(1, min(radius, height, width))
        offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
        kernel = tf.exp(-tf.square(offsets)[None, :] / (2.0 * tf.square(sigma)[:, None]))
        kernel /= tf.reduce_sum(kernel, axis=1, keepdims=True)
        impulse = tf.one_hot(radius, 2 * radius + 1)[None, :]
        kernel = tf.where(applied[:, None], kernel, impulse)

        def run(images):
            channels = 3
            folded = tf.transpose(images, [1, 2, 0, 3])
            shape = tf.shape(folded)
            folded = tf.reshape(folded, [1, shape[0], shape[1], count * channels])
            per_channel = tf.repeat(kernel, channels, axis=0)  # [B*C, taps]
            taps = 2 * radius + 1
            pad = [[0, 0], [radius, radius], [radius, radius], [0, 0]]
            folded = tf.pad(folded, pad, mode="SYMMETRIC")
            vertical = tf.reshape(tf.transpose(per_channel), [taps, 1, count * channels, 1])
            horizontal = tf.reshape(tf.transpose(per_channel), [1, taps, count * channels, 1])
            folded = tf.nn.depthwise_conv2d(folded, vertical, [1, 1, 1, 1], "VALID")
            folded = tf.nn.depthwise_conv2d(folded, horizontal, [1, 1, 1, 1], "VALID")
            folded = tf.reshape(folded, [shape[0], shape[1], count, channels])
            return tf.ensure_shape(tf.transpose(folded, [2, 0, 1, 3]), images.shape)

        # Most batches at a low blur probability still hold a blurred image,
        # but skipping the convolutions when none is saves time at p ~ 0.
        return tf.cond(tf.reduce_any(applied), lambda: run(images), lambda: images)


def resolve_augment(augment):
    """The :class:`Augment` meant by a pipeline's ``augment`` argument, or None.

    Args:
        augment: ``True`` (the default :class:`Augment`), ``None``/``False``
            (no augmentation), an :class:`Augment`, or a dict of its arguments
            (as read from a YAML config).

    Example:
        >>> resolve_augment({"flip": 0.5, "crop_pad": 0.1})
        Augment(flip=0.5, crop_pad=0.1, shift=0.0, zoom=0.0, blur=0.0, blur_sigma=(0.1, 2.0))
    """
    if augment is None or augment is False:
        return None
    if augment is True:
        return Augment()
    if isinstance(augment, Augment):
        return augment
    if isinstance(augment, dict):
        valid = [f.name for f in fields(Augment)]
        unknown = sorted(set(augment) - set(valid))
        if unknown:
            raise ReIDError(
                f"Augment: unknown option(s) {', '.join(unknown)}; valid options: "
                f"{', '.join(valid)}."
            )
        return Augment(**augment)
    raise ReIDError(
        "augment must be True, False/None, an Augment or a dict of its options. "
        f"Received: augment={augment!r}"
    )
