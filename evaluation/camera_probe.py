"""How much camera information an EmbAE run's features hold: a linear probe per feature set.

    python evaluation/camera_probe.py runs/embae_synth [--split train] [--steps 1000]

EmbAE's premise is that z_nui takes the camera (and dataset) nuisance so that
z_id keeps identity. This measures it on the run's target dataset: a linear
softmax classifier predicts the camera from (a) the frozen trunk's features,
(b) the baseline z_id and (c) every fine-tuned variant's z_id, trained on the
images of half of the identities and scored on the other half (accuracy;
chance is the largest camera's share). It reads the run's feature cache and
models; nothing is retrained but the probes.

A trunk whose features give the camera almost perfectly lets even a common
θ_nui condition on the camera, which bounds what a per-camera θ_nui can add.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keras_reid imports TensorFlow

import numpy as np
import yaml

from keras_reid.errors import ReIDError
from keras_reid.fileio import atomic_output
from keras_reid.reporting import load_keras_model
from keras_reid.training.embae import VARIANTS, embed, load_embae_data


def probe_accuracy(features, cameras, train, steps=1000, seed=0):
    """Held-out accuracy of a linear softmax probe from ``features`` [N, D] to ``cameras`` [N].

    The probe is trained for ``steps`` Adam updates (batches of 128) on the
    standardised features of the ``train`` rows and scored on the others.
    """
    import keras  # after keras_reid, which quiets TensorFlow's start-up logging
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    mean, std = features[train].mean(0), features[train].std(0) + 1e-6
    x = (features - mean) / std
    _, labels = np.unique(cameras, return_inverse=True)
    probe = keras.Sequential(
        [keras.Input((x.shape[1],)), keras.layers.Dense(int(labels.max()) + 1, "softmax")]
    )
    probe.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    batches = tf.data.Dataset.from_tensor_slices((x[train], labels[train]))
    batches = batches.shuffle(int(train.sum()), seed=seed).repeat().batch(128)
    probe.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return float(probe.evaluate(x[~train], labels[~train], verbose=0)[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished EmbAE run folder")
    parser.add_argument("--split", default="train", choices=["train", "query", "gallery"])
    parser.add_argument("--steps", type=int, default=1000, help="probe training steps")
    args = parser.parse_args(argv)
    try:
        config_path = os.path.join(args.run, "config.yaml")
        if not os.path.isfile(config_path):
            raise ReIDError(f"{args.run}: no config.yaml; give an EmbAE run folder.")
        with open(config_path, encoding="utf-8") as stream:
            config = yaml.safe_load(stream)
        target = load_embae_data(**config["data"]).target
        table = target.splits()[args.split]
        cache_path = os.path.join(args.run, "cache", f"{target.name}_{args.split}.npz")
        if not os.path.isfile(cache_path):
            raise ReIDError(f"no feature cache {cache_path}; finish the run first (--resume).")
        cache = np.load(cache_path)
        if list(cache["paths"]) != list(table["path"]):
            raise ReIDError(
                f"{cache_path} lists other images than {target.name} {args.split}; "
                "the dataset changed since the run: run it again."
            )
        cameras = table["camid"].to_numpy()
        if (cameras < 0).any():
            raise ReIDError(f"{target.name} has no camera ids; nothing to probe.")
        pids = np.unique(table["pid"])
        held_out = np.random.default_rng(0).permutation(pids)[: len(pids) // 2]
        train = ~np.isin(table["pid"].to_numpy(), held_out)
        chance = np.bincount(cameras[~train]).max() / (~train).sum()
        rows = [("trunk features", cache["features"][:, 0])]
        folders = ["pretrain_common", *VARIANTS]
        for folder in folders:
            path = os.path.join(args.run, folder, "model.keras")
            if os.path.isfile(path):
                name = "baseline z_id" if folder == "pretrain_common" else f"{folder} z_id"
                rows.append((name, embed(load_keras_model(path), cache["features"])))
        print(f"camera from features, {target.name} {args.split}: held-out identities")
        print(f"chance {chance:.3f}")
        results = {}
        for name, features in rows:
            results[name] = probe_accuracy(features, cameras, train, args.steps)
            print(f"{name:>20}: {results[name]:.3f}", flush=True)
        out = os.path.join(args.run, f"camera_probe_{args.split}.json")
        with atomic_output(out) as temporary, open(temporary, "w") as stream:
            json.dump({"chance": float(chance), **results}, stream, indent=1)
        print(f"-> {out}")
    except ReIDError as error:
        print(f"camera_probe: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
