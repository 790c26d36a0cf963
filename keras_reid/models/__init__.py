"""Trunks and the paper models built from them."""

from keras_reid.models import bn_inception, resnext  # noqa: F401  (register the trunks)
from keras_reid.models.backbones import BACKBONES, build_backbone, register_backbone
from keras_reid.models.dien import build_dien_model
from keras_reid.models.embedding import build_embedding_model, embedding_head
from keras_reid.models.msml import build_msml_model
from keras_reid.models.registry import MODELS, build_model, register_model
from keras_reid.models.sal import build_sal_model

__all__ = [
    "BACKBONES",
    "MODELS",
    "build_backbone",
    "build_dien_model",
    "build_embedding_model",
    "build_model",
    "build_msml_model",
    "build_sal_model",
    "embedding_head",
    "register_backbone",
    "register_model",
]
