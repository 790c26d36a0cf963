"""The PUL recipe (:func:`train_pul`): iterations of clustering and fine-tuning."""

import copy
import logging
import os

import keras
import pandas as pd

from keras_reid.config import call_section, check_run_dir, check_sections, prepare_run_dir
from keras_reid.errors import ReIDError
from keras_reid.evaluation.reports import brief_scores, write_score_results
from keras_reid.fileio import write_text
from keras_reid.training.pul.config import (
    FINETUNE_LOSSES,
    SECTIONS,
    PULOptions,
    PULRunOptions,
    check_finetune,
    load_pul_data,
    start_plan,
)
from keras_reid.training.pul.rounds import pseudo_labels, pul_model, reliable_dataset
from keras_reid.training.pul.scoring import results_frame, score_row
from keras_reid.training.recipe import train
from keras_reid.training.training_data import TrainingData, note_unlabelled_target

logger = logging.getLogger("keras_reid.training")


def train_pul(config, out, resume=False):
    """Run PUL from a config mapping; returns the results DataFrame.

    Args:
        config: the config mapping (see the module docstring).
        out: the run folder; refused if not empty unless ``resume``.
        resume: continue an interrupted run: a finished start model and
            finished iterations (``iter_t/model.keras``) are reused with their
            recorded pseudo-labels, the interrupted fit resumes.

    Returns:
        a DataFrame with columns model, iteration, threshold, selected,
        clusters_used, rank1, rank1_nd, mAP, mAP_nd: the row "start"
        (iteration 0) then "pul_t" per iteration.

    Example:
        >>> config = load_config("train_scripts/configs/pul_synth.yaml")
        >>> print(train_pul(config, "runs/pul_synth"))

    Fan, Zheng & Yang, "Unsupervised Person Re-identification: Clustering and
    Fine-tuning", ACM TOMM 2018 (Algorithm 1).
    """
    check_sections(config, SECTIONS)
    options = call_section(PULOptions, config, "pul")
    run = call_section(PULRunOptions, config, "train")
    finetune = check_finetune(config)
    data = call_section(load_pul_data, config, "data")
    target = data.target
    if options.clusters > len(target.train):
        raise ReIDError(
            f"pul.clusters={options.clusters} is more than the {len(target.train)} "
            f"{target.label} train images; use at most that many (about its identities)."
        )
    check_run_dir(out, config, resume=resume)
    start, start_config = start_plan(config, data, run, out, resume)
    out = prepare_run_dir(out, config, resume=resume)
    note_unlabelled_target(target)
    if start is None:
        logger.info("PUL: the start model on %s", ", ".join(d.label for d in data.sources))
        folder = os.path.join(out, "start")
        start = train(
            start_config,
            folder,
            resume=resume and os.path.isdir(folder),
            data=TrainingData(data.sources),
        )
    labels_dir = os.path.join(out, "pseudo_labels")
    os.makedirs(labels_dir, exist_ok=True)
    title = f"PUL -> {target.label}"
    rows = [score_row(start, target, "start", 0)]
    rows_ten = [score_row(start, target, "start", 0, tta="five-crop-flip")]
    logger.info("PUL start model on %s: %s", target.label, brief_scores(rows[0]))
    current = start
    for t in range(1, options.iterations + 1):
        folder = os.path.join(out, f"iter_{t}")
        labels_path = os.path.join(labels_dir, f"iter_{t}.csv")
        final = os.path.join(folder, "model.keras")
        threshold = options.threshold(t)
        if resume and os.path.isfile(labels_path):
            table = pd.read_csv(labels_path)
        else:
            table = pseudo_labels(current, target, options, t, run.seed + t, run.verbose)
            write_text(labels_path, table.to_csv(index=False))
        dataset = reliable_dataset(target, table, t)
        logger.info(
            "PUL iteration %d: λ = %g, %d reliable images of %d in %d clusters",
            t,
            threshold,
            len(dataset.train),
            len(table),
            dataset.train["pid"].nunique(),
        )
        if resume and os.path.isfile(final):
            model = keras.models.load_model(final)
        else:
            source = current if options.restart == "previous" else start
            fit_config = {
                **copy.deepcopy(finetune),
                "losses": FINETUNE_LOSSES,
                "train": {
                    "verbose": run.verbose,
                    **(finetune.get("train") or {}),
                    "seed": run.seed + t,
                },
            }

            def make_model(class_map, source=source, t=t):
                return pul_model(
                    start,
                    options.clusters,
                    source,
                    options.dropout,
                    options.classifier_std,
                    seed=run.seed + t,
                )

            model = train(
                fit_config,
                folder,
                resume=resume and os.path.isdir(folder),
                data=TrainingData([dataset]),
                make_model=make_model,
            )
        rows.append(score_row(model, target, f"pul_{t}", t, threshold, table))
        rows_ten.append(score_row(model, target, f"pul_{t}", t, threshold, table, "five-crop-flip"))
        logger.info("PUL iteration %d on %s: %s", t, target.label, brief_scores(rows[-1], rows[0]))
        current = model
    # Written once, at the end: results.csv marks a finished run (table scripts skip it).
    results = results_frame(rows)
    write_score_results(
        results_frame(rows_ten), out, f"{title}, ten views", "results_ten_views", "start"
    )
    write_score_results(results, out, title, baseline="start")
    return results
