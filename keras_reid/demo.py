"""``keras-reid demo``: the main pipeline on SynthReID, with no download.

Generates the SynthReID domains (synth-a and synth-c are sources, synth-b is
the target), prints each domain's ids, images and cameras, and writes a
contact sheet showing a few identities across every camera of each domain.
"""

import os

import pandas as pd

from keras_reid.data import load_dataset
from keras_reid.data.sheet import contact_sheet
from keras_reid.data.synthetic import generate

SOURCES = ("synth-a", "synth-c")
TARGET = "synth-b"


def generate_domains(out, seed=0, ids=None, size=(128, 64)):
    """Generate (or reuse) every SynthReID domain under ``out/data``; return the datasets."""
    datasets = {}
    for preset in (*SOURCES, TARGET):
        root = os.path.join(out, "data", preset)
        if not os.path.isdir(root):
            generate(preset, root, seed=seed, ids=ids, size=size)
        datasets[preset] = load_dataset(preset, root, seed=seed, ids=ids, size=size)
    return datasets


def run_demo(out="demo_out", quick=False, seed=0):
    """Run the demo into ``out``; ``quick`` uses fewer identities."""
    ids = 60 if quick else None
    print(f"[1/2] SynthReID domains -> {os.path.join(out, 'data')}")
    datasets = generate_domains(out, seed=seed, ids=ids)
    print(pd.concat([d.summary() for d in datasets.values()]).to_string(index=False))
    sheet = os.path.join(out, "synthreid_domains.png")
    print(f"[2/2] contact sheet -> {sheet}")
    contact_sheet({name: d.train for name, d in datasets.items()}, sheet, seed=seed)
    return datasets
