"""Serving: models in, embeddings out, in a notebook, a SavedModel, ONNX or a gallery index.

- :mod:`.model_io`: loading, inspecting and checking models (``keras_reid.load_model``);
- :mod:`.extract`: the one extraction core, with test-time augmentation;
- :mod:`.extractor`: :class:`FeatureExtractor` for notebooks and scripts, and
  the served computation the exports share;
- :mod:`.savedmodel` and :mod:`.onnx`: exports for TF Serving and ONNX Runtime;
- :mod:`.gallery`: sharded embedding of large galleries and their faiss index.
"""

from keras_reid.serving.extract import extract_features, tta_views
from keras_reid.serving.extractor import FeatureExtractor
from keras_reid.serving.model_io import inspect_model, load_keras_model, load_model
from keras_reid.serving.savedmodel import export_saved_model

__all__ = [
    "FeatureExtractor",
    "export_saved_model",
    "extract_features",
    "inspect_model",
    "load_keras_model",
    "load_model",
    "tta_views",
]
