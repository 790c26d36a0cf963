"""keras-reid: person re-identification with Keras 3 on TensorFlow.

Importing this package selects the TensorFlow backend for Keras and registers
every custom layer, loss and model so that ``keras.models.load_model(path)``
works without ``custom_objects``.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if os.environ["KERAS_BACKEND"] != "tensorflow":
    raise ImportError(
        f"keras_reid needs the TensorFlow backend of Keras, but KERAS_BACKEND="
        f"{os.environ['KERAS_BACKEND']!r}; unset it or set KERAS_BACKEND=tensorflow."
    )

from keras_reid._quiet import quiet_fd2  # noqa: E402

with quiet_fd2():
    try:
        import tensorflow  # noqa: F401
    except ImportError as error:  # pragma: no cover - exercised without TF only
        raise ImportError(
            "keras_reid needs TensorFlow, which is not installed: install it with "
            "`pip install keras-reid[cpu]` (or `.[cpu]` from a clone; `[gpu]` for CUDA)."
        ) from error

    # Importing these registers every custom layer, loss, schedule and model.
    from keras_reid import data, layers, losses, models, training  # noqa: F401
    from keras_reid.data import ReIDDataset, load_dataset
    from keras_reid.errors import ReIDError
    from keras_reid.serving.extractor import FeatureExtractor
    from keras_reid.serving.model_io import load_model
    from keras_reid.serving.savedmodel import export_saved_model

__version__ = "0.1.0"

__all__ = [
    "FeatureExtractor",
    "ReIDDataset",
    "ReIDError",
    "__version__",
    "data",
    "export_saved_model",
    "layers",
    "load_dataset",
    "load_model",
    "losses",
    "models",
    "training",
]
