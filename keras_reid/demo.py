"""``keras-reid demo``: the EmbAE pipeline on SynthReID, with no download.

The analogue of Table 1 of Potapov et al. (one labelled source, one
unlabelled target), on two generated domains:

1. Generates the SynthReID source synth-a and target synth-b, prints each
   domain's ids, images and cameras, and writes a contact sheet of a few
   identities across every camera of each.
2. Runs :func:`keras_reid.training.embae.train_embae` with the config of
   ``train_scripts/configs/embae_synth.yaml``: the metric embedding on the
   source (batch-hard soft-margin triplet), the frozen trunk's features
   cached, the autoencoders pre-trained on the source (common, per-dataset
   and per-camera θ_nui), each variant fine-tuned on the target's unlabelled
   train split, and everything scored on the target's query/gallery with flip
   TTA.
3. Prints the table in the paper's form (change over the baseline in
   brackets) and writes ``results.csv``, ``results.md`` and ``results.png``
   (a bar chart) into the output folder.

``--quick`` runs the same pipeline on 150 identities per domain with a
15-epoch stage 1 (about 2 minutes on 2 CPU cores instead of about 9); a
second run with the same ``--out`` reuses every finished stage.
"""

import copy
import os
import time

import pandas as pd

from keras_reid.data import load_dataset
from keras_reid.data.sheet import contact_sheet
from keras_reid.data.synthreid import generate
from keras_reid.environment import versions_line
from keras_reid.evaluation.reports import results_markdown, write_score_results
from keras_reid.training.embae import train_embae

SOURCE = "synth-a"
TARGET = "synth-b"
IMAGE_SIZE = (128, 64)  # generated size; the model reads 64x32
QUICK_IDS = 150

# train_scripts/configs/embae_synth.yaml without its data section (the demo
# passes the generated datasets); tests/test_demo.py keeps the two equal.
CONFIG = {
    "embedding": {
        "model": {
            "name": "trinet",
            "backbone": "small_convnet",
            "input_shape": [64, 32, 3],
            "weights": None,
            "embedding_dim": 128,
            "bn_momentum": 0.9,
            "head_order": "relu_bn",
        },
        "losses": {"embedding": {"name": "batch_hard", "margin": "soft"}},
        "optimizer": {"name": "adam"},
        "batches": {"p": 16, "k": 4, "augment": {"flip": 0.5, "crop_pad": 0.125}, "cache": True},
        "schedule": {
            "name": "exponential_after",
            "base_lr": 1.0e-3,
            "final_lr": 1.0e-5,
            "decay_start_epoch": 15,
            "decay_end_epoch": 40,
        },
        "train": {"epochs": 40, "checkpoint_every": 10, "verbose": 2},
    },
    "autoencoder": {"nui_dim": 128, "decoder_hidden": 1024},
    "pretrain": {"epochs": 30, "learning_rate": 1.0e-3},
    "finetune_nui": {"epochs": 10, "learning_rate": 1.0e-3},
    "finetune": {"epochs": 20, "learning_rate": 1.0e-3},
    "variants": ["all", "fix_nui", "new_nui", "dataset_nui", "cam_nui", "bn_adapt"],
    "train": {"seed": 0, "verbose": 2},
}

# --quick: the stage-1 schedule compressed to 15 epochs. The autoencoder stages
# keep their epochs: on 150 identities they take about 40 s in all, and halving
# them halved the gains (on the quick run, Rank-1-nd of `all` fell below the baseline).
QUICK = {
    ("embedding", "schedule", "decay_start_epoch"): 5,
    ("embedding", "schedule", "decay_end_epoch"): 15,
    ("embedding", "train", "epochs"): 15,
    ("embedding", "train", "checkpoint_every"): 5,
}


def generate_domains(out, seed=0, ids=None, presets=(SOURCE, TARGET)):
    """Generate (or reuse) SynthReID domains under ``out/data``; return their data specs.

    A spec is what a config's ``data`` section takes: ``{name, root, seed,
    ids, size}``, so that loading it reproduces the generated split.
    """
    specs = {}
    for preset in presets:
        root = os.path.join(out, "data", f"{preset}-ids{ids or 'default'}-seed{seed}")
        if not os.path.isdir(root):
            generate(preset, root, seed=seed, ids=ids, size=IMAGE_SIZE)
        specs[preset] = {"name": preset, "root": root, "seed": seed, "ids": ids, "size": IMAGE_SIZE}
    return specs


def demo_config(quick=False, seed=0, verbose=None):
    """The demo's EmbAE config (without ``data``); ``quick`` shortens stage 1.

    ``verbose`` (Keras' 1 bars, 2 a line per epoch): default bars on a
    terminal, lines otherwise (a log file).
    """
    config = copy.deepcopy(CONFIG)
    if quick:
        for (*sections, key), value in QUICK.items():
            section = config
            for name in sections:
                section = section[name]
            section[key] = value
    if verbose is None:
        verbose = 1 if os.isatty(1) else 2
    config["embedding"]["train"].update(verbose=verbose, seed=seed)
    config["train"].update(verbose=verbose, seed=seed)
    return config


def run_demo(out="demo_out", quick=False, seed=0, ids=None, verbose=None):
    """Run the demo into ``out``; returns the results table.

    Args:
        out: the output folder: data/, the run folder (quick/ or full/), the
            contact sheet and results.csv, results.md, results.png.
        quick: 150 identities per domain and a 15-epoch stage 1.
        seed: seeds the data generation and the training.
        ids: identities per domain, overriding the choice of ``quick``.
        verbose: progress output (see :func:`demo_config`).

    Returns:
        a DataFrame with columns model, rank1, rank1_nd, mAP, mAP_nd: the
        baseline (the source embedding) and one row per EmbAE variant.
    """
    start = time.perf_counter()
    ids = ids or (QUICK_IDS if quick else None)
    print(f"[1/3] SynthReID domains -> {os.path.join(out, 'data')}", flush=True)
    specs = generate_domains(out, seed=seed, ids=ids)
    datasets = {name: load_dataset(**spec) for name, spec in specs.items()}
    print(pd.concat([d.summary() for d in datasets.values()]).to_string(index=False))
    sheet = os.path.join(out, "synthreid_domains.png")
    contact_sheet({name: d.train for name, d in datasets.items()}, sheet, seed=seed)
    print(f"      contact sheet -> {sheet}", flush=True)

    run = os.path.join(out, "quick" if quick else "full")
    print(
        f"[2/3] EmbAE: embedding on {SOURCE} (labelled), autoencoders fine-tuned on "
        f"{TARGET} (unlabelled) -> {run}",
        flush=True,
    )
    config = demo_config(quick, seed, verbose)
    config["data"] = {"sources": [specs[SOURCE]], "target": specs[TARGET]}
    results = train_embae(config, run, resume=True)

    print(f"[3/3] {SOURCE} -> {TARGET}, flip TTA; change over the baseline in brackets:")
    print(results_markdown(results))
    print(f"Computed with {versions_line()}.", flush=True)
    write_score_results(results, out, f"EmbAE on SynthReID: {SOURCE} -> {TARGET}")
    minutes = (time.perf_counter() - start) / 60
    print(f"results -> {os.path.join(out, 'results.md')} (.csv, .png); {minutes:.1f} min")
    return results
