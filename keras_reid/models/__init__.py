"""Trunks and the paper models built from them."""

from keras_reid.models.backbones import BACKBONES, build_backbone, register_backbone
from keras_reid.models.embedding import build_embedding_model, embedding_head

__all__ = [
    "BACKBONES",
    "build_backbone",
    "build_embedding_model",
    "embedding_head",
    "register_backbone",
]
