"""Multi-stage recipes: one config, one run folder, the shared path once per stage.

A config with a ``stages`` section trains each stage in turn with
:func:`keras_reid.training.recipe.train`, each stage's sections being the
config's own with the stage's changes merged in (mappings key by key, as
``base:`` inheritance), and every stage after the first starting from the
previous stage's model (``train.init_from``; the optimizer and schedule
start afresh, as the self-attention paper's second stage does at 1e-4)::

    model: {name: sal, ...}
    optimizer: {name: sgd, momentum: 0.9}
    stages:
      stage1:                     # softmax + the self-attention constraint
        losses: {logits: {name: softmax}, attention: {name: sac}}
        schedule: {name: step, base_lr: 0.1, step_epochs: 50}
      stage2:                     # + quadruplet-hard, from stage 1's weights
        losses: {logits: ..., attention: ..., embedding: {name: quadruplet, ...}}
        schedule: {name: step, base_lr: 1.0e-4, step_epochs: 50}

The run folder holds config.yaml (the config as given), one sub-folder per
stage (a complete run folder each) and model.keras, the last stage's model.
Every stage's sections are checked before anything is written; a resumed
run skips finished stages and resumes the interrupted one. A config without
``stages`` is a single run of the shared path.
"""

import logging
import os

import keras

from keras_reid.config import (
    call_section,
    check_run_dir,
    check_sections,
    merge_config,
    prepare_run_dir,
)
from keras_reid.errors import ReIDError
from keras_reid.training.recipe import SECTIONS, check_config, train
from keras_reid.training.state import save_model
from keras_reid.training.training_data import load_training_data

logger = logging.getLogger("keras_reid.training")


def stage_configs(config, out):
    """``[(name, config)]``: each stage's full config, ``train.init_from`` chained.

    Stage k > 1 starts from ``out/<stage k-1>/model.keras`` unless it sets
    ``train.init_from`` itself.
    """
    stages = config.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise ReIDError(
            "config: stages must be a mapping of stage name -> section changes, e.g. "
            f"stages: {{stage1: {{losses: ...}}, stage2: {{...}}}}. Received: {stages!r}"
        )
    base = {key: value for key, value in config.items() if key != "stages"}
    result, previous = [], None
    for name, changes in stages.items():
        where = f"config: stages.{name}"
        if not isinstance(name, str) or not name or os.sep in name or name.startswith("."):
            raise ReIDError(f"{where}: a stage name must be a plain folder name, e.g. stage1.")
        if not isinstance(changes, dict):
            raise ReIDError(f"{where} must be a mapping of sections, not {changes!r}.")
        check_sections(changes, SECTIONS, where=where)
        stage = merge_config(base, changes)
        if previous is not None and "init_from" not in (changes.get("train") or {}):
            train_section = dict(stage.get("train") or {})
            train_section["init_from"] = os.path.join(os.path.abspath(out), previous, "model.keras")
            stage["train"] = train_section
        result.append((name, stage))
        previous = name
    return result


def train_stages(config, out, resume=False, data=None):
    """Train a config's stages in turn into ``out/<stage>``; returns the last stage's model.

    Args:
        config: the config mapping; without ``stages`` it is one run
            (:func:`~keras_reid.training.recipe.train`).
        out: the run folder; refused if not empty unless ``resume``.
        resume: skip finished stages, resume the interrupted one.
        data: a :class:`~keras_reid.training.training_data.TrainingData` for every stage
            instead of their ``data`` sections.

    Example:
        >>> model = train_stages(load_config("train_scripts/configs/sal_synth.yaml"), "runs/sal")
    """
    if "stages" not in config:
        return train(config, out, resume=resume, data=data)
    check_sections(config, (*SECTIONS, "stages"))
    stages = stage_configs(config, out)
    check_run_dir(out, config, resume=resume)
    final = os.path.join(os.path.abspath(out), "model.keras")
    if resume and os.path.isfile(final):
        logger.info("%s is a finished run (its model.keras exists): nothing to resume.", out)
        return keras.models.load_model(final)
    if data is None:
        sections = {repr(stage.get("data")) for _, stage in stages}
        if len(sections) == 1:  # every stage trains on the same data: load it once
            data = call_section(load_training_data, stages[0][1], "data")
    previous = None
    for name, stage in stages:
        # Check every stage before the run folder is written. The model of the
        # stage before does not exist yet: the other sections are checked
        # (an init_from the config gives is checked too).
        chained = previous and os.path.join(os.path.abspath(out), previous, "model.keras")
        init_from = (stage.get("train") or {}).get("init_from")
        if chained and init_from == chained and not os.path.isfile(chained):
            stage = merge_config(stage, {"train": {"init_from": None}})
        check_config(stage, data)
        previous = name
    out = prepare_run_dir(out, config, resume=resume)
    model = None
    for name, stage in stages:
        folder = os.path.join(out, name)
        logger.info("stage %s -> %s", name, folder)
        model = train(stage, folder, resume=resume and os.path.isdir(folder), data=data)
    save_model(model, final)
    return model
