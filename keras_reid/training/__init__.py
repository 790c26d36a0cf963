"""Training recipes of the papers, schedules, callbacks and the shared runner.

``RECIPES`` maps a recipe name (``keras-reid train NAME``) to a function
``fn(config, out, resume=False)`` that trains from a config mapping.
"""

from keras_reid.registry import Registry
from keras_reid.training.embae import train_embae
from keras_reid.training.embedding import train_embedding
from keras_reid.training.optimizers import (
    OPTIMIZERS,
    LayerwiseOptimizer,
    build_optimizer,
    variable_paths,
)
from keras_reid.training.pul import train_pul
from keras_reid.training.recipe import train
from keras_reid.training.runner import TrainOptions
from keras_reid.training.schedules import (
    SCHEDULES,
    ExponentialDecayAfter,
    LinearWarmup,
    Piecewise,
    StepDecay,
    build_schedule,
)
from keras_reid.training.stages import train_stages

RECIPES = Registry("training recipe")
RECIPES.register("embedding")(train_embedding)
RECIPES.register("embae")(train_embae)
# MSML (and every later paper) is the shared path with its configs' sections;
# SAL's two stages are two runs of it (a config without stages is one).
RECIPES.register("msml")(train)
RECIPES.register("sal")(train_stages)
# DIEN: one run of the shared path on cross-domain batches.
RECIPES.register("dien")(train)
# PUL: clustering rounds, each a run of the shared path on pseudo-labelled target images.
RECIPES.register("pul")(train_pul)

__all__ = [
    "OPTIMIZERS",
    "RECIPES",
    "SCHEDULES",
    "ExponentialDecayAfter",
    "LayerwiseOptimizer",
    "LinearWarmup",
    "Piecewise",
    "StepDecay",
    "TrainOptions",
    "build_optimizer",
    "build_schedule",
    "train",
    "train_embae",
    "train_embedding",
    "train_pul",
    "train_stages",
    "variable_paths",
]
