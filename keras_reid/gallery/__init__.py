"""Galleries past one machine: sharded feature extraction and a faiss gallery index."""

from keras_reid.gallery.features import (
    FeatureSet,
    embed_split,
    model_fingerprint,
    read_features,
    write_features,
)

__all__ = ["FeatureSet", "embed_split", "model_fingerprint", "read_features", "write_features"]
