"""The metric-embedding recipe: EmbAE's stage 1 (after Hermans et al. 2017) on the shared path.

A MobileNet (or ResNet50, or any registered) trunk with the TriNet head,
trained with the batch-hard soft-margin triplet loss on P×K batches drawn
from one or several labelled datasets (never mixed in a batch), Adam with a
constant rate then exponential decay. It is :func:`keras_reid.training.recipe.train`
with these defaults for the sections a config leaves out:

=========  ==========================================================
model      ``name: trinet`` (the other model arguments are the config's)
losses     ``{embedding: {name: batch_hard, margin: soft}}``
optimizer  ``name: adam``
schedule   ``name: exponential_after`` (EmbAE paper, Sec. 4.2)
batches    ``kind: pk``
=========  ==========================================================

The config recorded in the run folder is the resolved one, defaults included.
"""

import copy

from keras_reid.training.recipe import check_config, train, triplet_metrics
from keras_reid.training.training_data import TrainingData, load_training_data

DEFAULTS = {
    "model": {"name": "trinet"},
    "losses": {"embedding": {"name": "batch_hard", "margin": "soft"}},
    "optimizer": {"name": "adam"},
    "schedule": {"name": "exponential_after"},
}


def embedding_config(config):
    """``config`` with the embedding recipe's defaults where it says nothing.

    A section the config gives keeps its own keys; a named section (model,
    optimizer, schedule) without a ``name`` gets the default one. ``losses``
    is taken whole from the config when it has one.
    """
    resolved = copy.deepcopy(config)
    for section, default in DEFAULTS.items():
        given = resolved.get(section)
        if given is None:
            resolved[section] = copy.deepcopy(default)
        elif section != "losses" and isinstance(given, dict) and "name" not in given:
            resolved[section] = {"name": default["name"], **given}
    return resolved


def train_embedding(config, out, resume=False, data=None):
    """Train a metric embedding from a config mapping; returns the trained model.

    See :func:`keras_reid.training.recipe.train` for what the run folder holds.

    Example:
        >>> config = load_config("train_scripts/configs/embedding_synth.yaml")
        >>> model = train_embedding(config, "runs/embedding_synth")
    """
    return train(embedding_config(config), out, resume=resume, data=data)


def check_embedding_config(config, data=None):
    """Check an embedding config as :func:`train_embedding` does, writing nothing."""
    check_config(embedding_config(config), data)


__all__ = [
    "DEFAULTS",
    "TrainingData",
    "check_embedding_config",
    "embedding_config",
    "load_training_data",
    "train_embedding",
    "triplet_metrics",
]
