"""``keras-reid demo``: the main pipeline on SynthReID, with no download.

1. Generates the SynthReID domains (synth-a and synth-c are sources, synth-b
   is the target), prints each domain's ids, images and cameras, and writes a
   contact sheet of a few identities across every camera of each domain.
2. Trains the metric embedding (EmbAE stage 1) on the source synth-a.
3. Scores it on the target synth-b (flip TTA, L2-normalised embeddings): the
   cross-domain baseline that EmbAE's unsupervised fine-tuning improves on.
"""

import os

import pandas as pd

from keras_reid.data import load_dataset
from keras_reid.data.sheet import contact_sheet
from keras_reid.data.synthetic import generate
from keras_reid.metrics import format_results
from keras_reid.reporting import evaluate_model, load_keras_model
from keras_reid.training.embedding import TrainingData, train_embedding

# train_scripts/configs/embedding_synth.yaml, minus its data section (the
# demo passes the generated datasets); quick runs train 12 epochs instead of 40.
EMBEDDING_CONFIG = {
    "model": {"backbone": "small_convnet", "input_shape": [64, 32, 3], "bn_momentum": 0.9},
    "loss": {"name": "batch_hard", "margin": "soft"},
    "batches": {"p": 16, "k": 4, "augment": {"flip": 0.5, "crop_pad": 0.125}, "cache": True},
    "schedule": {"base_lr": 1e-3, "final_lr": 1e-5, "decay_start_epoch": 15, "decay_end_epoch": 40},
    "train": {"epochs": 40, "checkpoint_every": 10, "verbose": 2},
}

SOURCES = ("synth-a", "synth-c")
TARGET = "synth-b"


def generate_domains(out, seed=0, ids=None, size=(128, 64)):
    """Generate (or reuse) every SynthReID domain under ``out/data``; return the datasets."""
    datasets = {}
    for preset in (*SOURCES, TARGET):
        root = os.path.join(out, "data", f"{preset}-ids{ids or 'default'}-seed{seed}")
        if not os.path.isdir(root):
            generate(preset, root, seed=seed, ids=ids, size=size)
        datasets[preset] = load_dataset(preset, root, seed=seed, ids=ids, size=size)
    return datasets


def demo_config(quick=False, seed=0):
    """The demo's embedding config; ``quick`` compresses the schedule to 12 epochs."""
    config = {section: dict(values) for section, values in EMBEDDING_CONFIG.items()}
    config["train"]["seed"] = seed
    if quick:
        config["schedule"].update(decay_start_epoch=4, decay_end_epoch=12)
        config["train"].update(epochs=12, checkpoint_every=4)
    return config


def run_demo(out="demo_out", quick=False, seed=0, ids=None):
    """Run the demo into ``out``; ``quick`` uses fewer identities and epochs.

    Args:
        out: the output folder (data, run folders, reports).
        quick: 100 identities per domain and 12 epochs instead of 300 and 40.
        seed: seeds the data generation and the training.
        ids: identities per domain, overriding the choice of ``quick``.

    Returns the results row of the source embedding scored on the target.
    """
    ids = ids or (100 if quick else None)
    print(f"[1/3] SynthReID domains -> {os.path.join(out, 'data')}")
    datasets = generate_domains(out, seed=seed, ids=ids)
    print(pd.concat([d.summary() for d in datasets.values()]).to_string(index=False))
    sheet = os.path.join(out, "synthreid_domains.png")
    contact_sheet({name: d.train for name, d in datasets.items()}, sheet, seed=seed)
    print(f"      contact sheet -> {sheet}")
    run = os.path.join(out, "quick" if quick else "full", "embedding")
    print(f"[2/3] metric embedding on {SOURCES[0]} (batch-hard soft-margin triplet) -> {run}")
    finished = os.path.join(run, "model.keras")
    if os.path.isfile(finished):
        print(f"      reusing {finished} (delete it to train again)")
        model = load_keras_model(finished)
    else:
        data = TrainingData([datasets[SOURCES[0]]])
        model = train_embedding(demo_config(quick, seed), run, resume=True, data=data)
    report = os.path.join(out, "quick" if quick else "full", "evaluation")
    print(f"[3/3] scoring on the target {TARGET} (flip TTA) -> {report}")
    row = evaluate_model(model, datasets[TARGET], tta="flip", out=report)
    row.insert(0, "model", f"embedding ({SOURCES[0]})")
    print(format_results(row[["model", "dataset", "rank1", "rank1_nd", "mAP", "mAP_nd"]]))
    return row
