"""Galleries past one machine: sharded feature extraction and a faiss gallery index."""

from keras_reid.serving.gallery.features import (
    FeatureSet,
    embed_split,
    model_fingerprint,
    read_features,
    write_features,
)
from keras_reid.serving.gallery.index import GalleryIndex
from keras_reid.serving.gallery.search import build_index, evaluate_with_index, search_images

__all__ = [
    "FeatureSet",
    "GalleryIndex",
    "build_index",
    "embed_split",
    "evaluate_with_index",
    "model_fingerprint",
    "read_features",
    "search_images",
    "write_features",
]
