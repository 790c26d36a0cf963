"""Training recipes of the papers, schedules, callbacks and the shared runner.

``RECIPES`` maps a recipe name (``keras-reid train NAME``) to a function
``fn(config, out, resume=False)`` that trains from a config mapping.
"""

from keras_reid.registry import Registry
from keras_reid.training.embae import train_embae
from keras_reid.training.embedding import train_embedding
from keras_reid.training.runner import TrainOptions
from keras_reid.training.schedules import ExponentialDecayAfter

RECIPES = Registry("training recipe")
RECIPES.register("embedding")(train_embedding)
RECIPES.register("embae")(train_embae)

__all__ = ["RECIPES", "ExponentialDecayAfter", "TrainOptions", "train_embae", "train_embedding"]
