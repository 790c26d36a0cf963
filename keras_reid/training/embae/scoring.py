"""EmbAE's scores: z_id of cached features, the paper's Rank-1/mAP(-nd), the camera probe."""

import os
import re

import keras
import numpy as np
import yaml

from keras_reid.config import call_section
from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics import evaluate, probe_accuracy
from keras_reid.evaluation.reports import SCORE_COLUMNS
from keras_reid.training.embae.config import VARIANTS, load_embae_data

SCORES = SCORE_COLUMNS


def cache_path(folder, dataset, split, views="flip"):
    """The feature cache file of a dataset's split in ``folder``: ``{label}_{split}[_{views}].npz``.

    Characters of the label other than letters, digits, ``_``, ``.`` and
    ``-`` (the ``:`` and ``/`` of ``market1501:A``) become ``_``.
    """
    name = re.sub(r"[^\w.-]", "_", dataset.label)
    suffix = "" if views == "flip" else f"_{views}"
    return os.path.join(folder, f"{name}_{split}{suffix}.npz")


def embed(model, features, batch_size=4096):
    """z_id of cached features, averaged over the image and its flip (flip TTA): [N, D].

    The model is called directly in chunks rather than through ``predict``:
    a few dense layers on an array need no tf.data pipeline or tracing.
    """
    chunks = []
    for start in range(0, len(features), batch_size):
        views = features[start : start + batch_size]
        flat = views.reshape(-1, views.shape[-1])  # image 0 view 0, image 0 view 1, ...
        inputs = {"features": flat, "group": np.zeros(len(flat), np.int32)}  # z_id ignores it
        z_id = keras.ops.convert_to_numpy(model(inputs, training=False)["embedding"])
        chunks.append(z_id.reshape(len(views), views.shape[1], -1).mean(axis=1))
    return np.concatenate(chunks)


def score(model, query, gallery, query_table, gallery_table):
    """The paper's scores of ``model``'s z_id: L2-normalised, flip-averaged, euclidean."""
    row = evaluate(
        embed(model, query), embed(model, gallery), query_table, gallery_table, normalize=True
    )
    return {name: float(row[name].iloc[0]) for name in SCORES}


def camera_probe(run, split="train", steps=1000):
    """How much camera information a finished run's features and z_id hold, on its target.

    EmbAE's premise is that z_nui takes the camera nuisance so that z_id
    keeps identity. A linear probe (:func:`keras_reid.evaluation.metrics.probe_accuracy`)
    predicts the camera from the frozen trunk's features, from the baseline
    z_id and from each fine-tuned variant's z_id, trained on the images of half
    of the target's identities and scored on the other half. The run's feature
    cache and models are read; only the probes are trained.

    Args:
        run: a finished EmbAE run folder.
        split: the target split probed ("train", "query" or "gallery"). Default "train".
        steps: training steps of each probe. Default 1000.

    Returns:
        a dict: "chance" (the largest camera's share of the held-out images),
        "trunk features", "baseline z_id" and "<variant> z_id" accuracies.

    Example:
        >>> camera_probe("runs/embae_synth")["cam_nui z_id"]
    """
    config_path = os.path.join(run, "config.yaml")
    if not os.path.isfile(config_path):
        raise ReIDError(f"{run}: no config.yaml; give an EmbAE run folder.")
    with open(config_path, encoding="utf-8") as stream:
        config = yaml.safe_load(stream) or {}
    target = call_section(load_embae_data, config, "data").target
    table = target.splits()[split]
    cached = cache_path(os.path.join(run, "cache"), target, split)
    if not os.path.isfile(cached):
        raise ReIDError(f"no feature cache {cached}; finish the run first (--resume).")
    with np.load(cached) as cache:
        paths, features = list(cache["paths"]), cache["features"]
    if paths != list(table["path"]):
        raise ReIDError(
            f"{cached} lists other images than {target.label} {split}; the dataset "
            "changed since the run: run it again."
        )
    cameras = table["camid"].to_numpy()
    if (cameras < 0).any():
        raise ReIDError(f"{target.label} {split} has images without camera ids; nothing to probe.")
    pids = np.unique(table["pid"])
    held_out = np.random.default_rng(0).permutation(pids)[: len(pids) // 2]
    train = ~np.isin(table["pid"].to_numpy(), held_out)
    results = {"chance": float(np.bincount(cameras[~train]).max() / (~train).sum())}
    results["trunk features"] = probe_accuracy(features[:, 0], cameras, train, steps)
    for folder in ("pretrain_common", *VARIANTS):
        path = os.path.join(run, folder, "model.keras")
        if os.path.isfile(path):
            name = "baseline" if folder == "pretrain_common" else folder
            z_id = embed(keras.models.load_model(path), features)
            results[f"{name} z_id"] = probe_accuracy(z_id, cameras, train, steps)
    return results
