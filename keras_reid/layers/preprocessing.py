"""The trunks' input normalisation as a serializable layer, so models take raw RGB."""

import keras
from keras import ops

# keras.applications' "caffe" mode: RGB -> BGR, then subtract the ImageNet BGR mean.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="keras_reid")
class TrunkPreprocessing(keras.layers.Layer):
    """Map raw RGB in [0, 255] to what an ImageNet trunk expects.

    Args:
        mode: "tf" (scale to [-1, 1]: MobileNet) or "caffe" (BGR, mean-subtracted:
            ResNet50), as in ``keras.applications.*.preprocess_input``.

    Example:
        >>> x = keras.Input((256, 128, 3))
        >>> y = TrunkPreprocessing("tf")(x)
    """

    MODES = ("tf", "caffe")

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}. Received: mode={mode!r}")
        self.mode = mode

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if self.mode == "tf":
            return images / 127.5 - 1.0
        bgr = ops.flip(images, axis=-1)
        return bgr - ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
