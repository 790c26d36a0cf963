"""The EmbAE recipe (:func:`train_embae`): stage orchestration, no fitting or reporting.

Stage 1 is the shared embedding recipe, the autoencoder stages are in
:mod:`keras_reid.training.embae.stages`, the scores in
:mod:`keras_reid.training.embae.scoring`, and the results files are written
by :mod:`keras_reid.evaluation.reports`.
"""

import copy
import logging
import os

import keras
import pandas as pd

from keras_reid.config import call_section, check_run_dir, check_sections, prepare_run_dir
from keras_reid.errors import ReIDError
from keras_reid.evaluation.reports import brief_scores, write_score_results
from keras_reid.models import build_model
from keras_reid.models.embae import (
    adapt_embedding_statistics,
    build_embae_model,
    copy_stage1_head,
    stage1_dimensions,
)
from keras_reid.models.embedding import head_order
from keras_reid.serving.model_io import load_keras_model
from keras_reid.training.embae.config import (
    SECTIONS,
    VARIANT_NUI,
    CacheOptions,
    RunOptions,
    autoencoder_options,
    check_variants,
    load_embae_data,
    runnable_variants,
    stage_options,
)
from keras_reid.training.embae.scoring import SCORES, cache_path, score
from keras_reid.training.embae.stages import (
    finetune,
    finished_stage,
    group_keys,
    pretrain,
    save_stage,
    target_keys,
)
from keras_reid.training.embedding import (
    check_embedding_config,
    embedding_config,
    train_embedding,
)
from keras_reid.training.feature_cache import cached_trunk_features
from keras_reid.training.state import load_finished_model
from keras_reid.training.training_data import TrainingData, note_unlabelled_target

logger = logging.getLogger("keras_reid.training")


def stage1_plan(config, data, out, resume):
    """Check stage 1 before anything is written; return ``(model or None, section, path)``.

    The model is the one ``embedding.model_path`` names, or a finished stage 1
    being resumed; None means stage 1 is to be trained from ``section``, which
    has then been checked like :func:`train_embedding` checks it.
    """
    section = copy.deepcopy(config.get("embedding") or {})
    if not isinstance(section, dict):
        raise ReIDError(
            f"config: section embedding must be a mapping of keys, not {section!r}; see "
            "train_scripts/configs/embae_synth.yaml."
        )
    if "data" in section:
        raise ReIDError(
            "embedding.data: stage 1 trains on the top-level data.sources; remove embedding.data."
        )
    model_path = section.pop("model_path", None)
    if model_path:
        model_path = os.path.abspath(os.path.expandvars(os.path.expanduser(str(model_path))))
        if not os.path.isfile(model_path):
            raise ReIDError(
                f"embedding.model_path: no file {model_path}; give a trained stage-1 .keras "
                "model, or remove the key to train stage 1."
            )
        model = load_keras_model(model_path)
    else:
        model_path = os.path.join(os.path.abspath(out), "embedding", "model.keras")
        model = None
        if resume and os.path.isfile(model_path):
            model = load_finished_model(model_path)
        else:
            # Recorded in embedding/config.yaml; the datasets themselves are passed loaded.
            section["data"] = {"train": config["data"]["sources"], "val": config["data"]["target"]}
            check_embedding_config(section, TrainingData(data.sources, data.target))
    if model is not None and "model" in section:
        # Sizes only: weights are not needed to know the shapes a config gives.
        options = {**embedding_config(section)["model"], "weights": None}
        expected = stage1_dimensions(build_model(options.pop("name"), **options))
        found = stage1_dimensions(model)
        if found[:2] != expected[:2]:
            raise ReIDError(
                f"stage-1 model {model_path} has input {found[0]} and {found[1]} trunk "
                f"features, but embedding.model gives input {expected[0]} and {expected[1]} "
                "trunk features; point model_path at a model trained with this config's trunk "
                "and image size."
            )
    return model, section, model_path


def stage1_model(plan, data, out, resume):
    """The stage-1 embedding model: the planned one, or trained now into ``out/embedding``."""
    model, section, model_path = plan
    if model is not None:
        logger.info(f"EmbAE stage 1: using the trained embedding {model_path}")
        return model
    names = ", ".join(d.label for d in data.sources)
    logger.info(f"EmbAE stage 1: metric embedding on {names}")
    stage1_data = TrainingData(data.sources, data.target)
    return train_embedding(section, os.path.join(out, "embedding"), resume=resume, data=stage1_data)


def train_embae(config, out, resume=False):
    """Run the EmbAE recipe from a config mapping; returns the results DataFrame.

    Args:
        config: the config mapping (see the module docstring).
        out: the run folder; refused if not empty unless ``resume``.
        resume: continue an interrupted run: finished stages (their
            model.keras) are reused, the interrupted one is run again.

    Returns:
        a DataFrame with columns model, rank1, rank1_nd, mAP, mAP_nd: the row
        "baseline" (the stage-1 embedding) and one per variant run.

    Example:
        >>> config = load_config("train_scripts/configs/embae_synth.yaml")
        >>> print(results_markdown(train_embae(config, "runs/embae_synth")))
    """
    check_sections(config, SECTIONS)
    variants = check_variants(config.get("variants"))
    options = call_section(RunOptions, config, "train")
    cache_options = call_section(CacheOptions, config, "cache")
    pretrain_stage, finetune_stage, finetune_nui_stage = (
        stage_options(config, name) for name in ("pretrain", "finetune", "finetune_nui")
    )
    autoencoder = autoencoder_options(config)
    data = call_section(load_embae_data, config, "data")
    variants = runnable_variants(variants, data)
    check_run_dir(out, config, resume=resume)
    plan = stage1_plan(config, data, out, resume)
    out = prepare_run_dir(out, config, resume=resume)
    note_unlabelled_target(data.target)
    keras.utils.set_random_seed(options.seed)

    stage1 = stage1_model(plan, data, out, resume)
    _, feature_dim, hidden, embedding_dim = stage1_dimensions(stage1)
    sizes = {
        "feature_dim": feature_dim,
        "embedding_dim": embedding_dim,
        "hidden": hidden,
        "head_order": head_order(stage1),
    }

    logger.info("EmbAE: trunk features (each image and its flip) into the feature cache")
    cache_dir = cache_options.dir or os.path.join(out, "cache")

    def cached(dataset, split, views="flip"):
        table = dataset.splits()[split]
        path = cache_path(cache_dir, dataset, split, views)
        return cached_trunk_features(
            stage1, table, path, cache_options.batch_size, options.verbose == 1, views
        ).features

    sources = {d.label: (d.train, cached(d, "train")) for d in data.sources}
    target = data.target
    target_train = cached(target, "train")
    # The test-time views scored: the image and its mirror (results.*), and
    # Hermans et al.'s ten views (results_ten_views.*), as the paper's scores.
    tests = {"flip": (cached(target, "query"), cached(target, "gallery"))}
    if options.ten_views:
        tests["ten"] = (cached(target, "query", "ten"), cached(target, "gallery", "ten"))
    rows = {views: [] for views in tests}

    def add_row(name, model):
        for views, (query, gallery) in tests.items():
            scores = score(model, query, gallery, target.query, target.gallery)
            rows[views].append({"model": name, **scores})
        baseline = None if name == "baseline" else rows["flip"][0]
        logger.info(f"EmbAE {name} on {target.label}: {brief_scores(rows['flip'][-1], baseline)}")

    def fresh(groups):
        model = build_embae_model(**sizes, groups=groups, **autoencoder)
        copy_stage1_head(stage1, model)
        return model

    add_row("baseline", fresh(1))

    pretrained = {}
    needed = dict.fromkeys(VARIANT_NUI[v] for v in variants if v in VARIANT_NUI)
    for step, nui in enumerate(needed):
        folder = os.path.join(out, f"pretrain_{nui}")
        keys = group_keys(nui, {name: table for name, (table, _) in sources.items()})
        model = finished_stage(folder, resume, nui, keys)
        if model is None:
            model = fresh(len(keys))
            seed = options.seed + 100 + step
            pretrain(model, nui, keys, sources, pretrain_stage, options, folder, seed)
            save_stage(folder, model, nui, keys)
        pretrained[nui] = (model, keys)

    export = stage1 if options.export_inference else None
    for step, variant in enumerate(variants):
        folder = os.path.join(out, variant)
        if variant == "bn_adapt":
            nui, keys = "common", ["common"]
        else:
            nui = VARIANT_NUI[variant]
            keys = target_keys(nui, pretrained[nui][1], target)
        model = finished_stage(folder, resume, nui, keys, inference=options.export_inference)
        if model is None and variant == "bn_adapt":
            logger.info(
                f"EmbAE control [bn_adapt] on {target.label}: the stage-1 head with its "
                "BatchNorm statistics re-estimated on the target, nothing else trained"
            )
            model = fresh(1)
            adapt_embedding_statistics(model, target_train)
            save_stage(folder, model, nui, keys, export)
        elif model is None:
            seed = options.seed + 200 + 10 * step
            stages = (finetune_stage, finetune_nui_stage)
            model = finetune(
                variant, pretrained[nui], target, target_train, stages, options, folder, seed
            )
            save_stage(folder, model, nui, keys, export)
        add_row(variant, model)

    title = f"EmbAE {' + '.join(sources)} -> {target.label}"
    tables = {
        views: pd.DataFrame(found, columns=["model", *SCORES]) for views, found in rows.items()
    }
    if "ten" in tables:
        write_score_results(tables["ten"], out, f"{title}, ten views", name="results_ten_views")
    write_score_results(tables["flip"], out, title)
    results = tables["flip"]
    return results
