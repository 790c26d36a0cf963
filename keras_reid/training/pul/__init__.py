"""PUL: progressive unsupervised learning by clustering and fine-tuning (Fan, Zheng & Yang 2018).

"Unsupervised Person Re-identification: Clustering and Fine-tuning" (ACM
TOMM 2018), the comparison method of the EmbAE paper's Tables 3-4. From a
start model trained on labelled source data, each iteration t = 1..T:

1. extracts features of every target train image with the current model
   (the previous iteration's; the start model at t = 1), L2-normalised, flip TTA;
2. clusters them with k-means into K clusters;
3. takes as each cluster's center the real image nearest its centroid (as the
   released code does: ``argmin`` of ``kmeans.transform`` over the images),
   and keeps the *reliable* images: those whose cosine similarity to some
   center exceeds λ_t = ``lambda_start + (t - 1) * lambda_step``; a reliable
   image's label is its own k-means cluster (:func:`cluster_and_select`);
4. fine-tunes a fresh copy of the start model (``restart: original``, as
   released; or of the previous iteration's model, ``restart: previous``)
   with a new classifier (dropout 0.5, Dense K, kernel N(0, 0.001)) on the
   reliable images with softmax cross-entropy: one run of the shared
   training path (:func:`keras_reid.training.recipe.train`) into ``out/iter_t``.

Config sections:

=========  ====================================================================
data       :func:`load_pul_data`: ``target`` (one spec), ``sources`` (needed
           only when ``start.train`` trains the start model here)
start      ``model_path`` (a trained .keras model with an "embedding" output,
           e.g. an EmbAE run's embedding/model.keras) or ``train`` (a full
           shared-recipe config without ``data``, trained on data.sources into
           ``out/start``): exactly one of them
pul        :class:`PULOptions` (iterations, clusters, lambda_start,
           lambda_step, restart, features_output, n_init, dropout, classifier_std)
finetune   the shared recipe's ``batches``, ``optimizer``, ``schedule`` and
           ``train`` sections of every iteration's fit (the loss is softmax
           cross-entropy on "logits"; ``train.seed`` is the run's seed + t)
train      :class:`PULRunOptions` (seed, verbose)
=========  ====================================================================

The run folder holds config.yaml, start/ (when trained here),
pseudo_labels/iter_t.csv (every target train image's cluster, whether it was
selected, whether it is a center), iter_t/ (a complete run folder of the
shared path each) and results.csv/.md/.png: the start model's and every
iteration's Rank-1, Rank-1-nd, mAP and mAP-nd on the target's query/gallery
with the image and its mirror; results_ten_views.* the same with Hermans et
al.'s ten views (five crops and their mirrors). Both are written when the
last iteration is done.

Example::

    config = load_config("train_scripts/configs/pul_synth.yaml")
    results = train_pul(config, "runs/pul_synth")
"""

from keras_reid.training.pul.config import (
    SECTIONS,
    PULData,
    PULOptions,
    PULRunOptions,
    check_finetune,
    load_pul_data,
)
from keras_reid.training.pul.recipe import train_pul
from keras_reid.training.pul.rounds import cluster_and_select, copy_weights, pul_model
from keras_reid.training.pul.scoring import RESULT_COLUMNS

__all__ = [
    "RESULT_COLUMNS",
    "SECTIONS",
    "PULData",
    "PULOptions",
    "PULRunOptions",
    "check_finetune",
    "cluster_and_select",
    "copy_weights",
    "load_pul_data",
    "pul_model",
    "train_pul",
]
