"""Seconds per EmbAE autoencoder epoch: on cached trunk features, and recomputing the trunk.

In every autoencoder stage of EmbAE the trunk is frozen, so its pooled
features can be computed once per image and per flip
(:mod:`keras_reid.training.feature_cache`). This compares one epoch over a
SynthReID synth-a train split (same autoencoder, same batch size 128, Adam,
θ_nui and θ_dec trained as in pre-training) done two ways:

- cached: :func:`keras_reid.training.embae.feature_batches` over the cache;
- recomputed: images -> frozen trunk -> the same autoencoder, with the images
  decoded once and kept in memory (``unlabeled_batches(cache=True)``, flip
  augmentation), which is the most favourable case for recomputing.

Two settings: the SynthReID one (64x32, MobileNet alpha 0.25) and the
paper's (256x128, alpha 1.0; fewer images, since only the per-epoch ratio
matters). The one-off cost of building the cache is printed too. Figures
depend on the machine and its load; nothing is asserted.

Usage:
    python bench/embae_cache.py [--ids 300] [--paper-ids 40] [--epochs 3] [--skip-paper]
"""

import argparse
import os
import tempfile
import time

import keras
import numpy as np

from keras_reid.data.pipeline import unlabeled_batches
from keras_reid.data.synthetic import load_synthreid
from keras_reid.models import build_embedding_model
from keras_reid.models.embae import build_embae_model, copy_stage1_head, set_trainable
from keras_reid.training.embae import feature_batches
from keras_reid.training.feature_cache import cached_trunk_features

BATCH = 128


def timed_epochs(model, dataset, epochs, steps=None):
    """Seconds per epoch of ``model.fit``, after one warm-up epoch (tracing, pipeline start)."""
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps, verbose=0)
    return (time.perf_counter() - start) / epochs


def autoencoder(stage1, feature_dim):
    model = build_embae_model(feature_dim, embedding_dim=128, groups=1)
    copy_stage1_head(stage1, model)
    set_trainable(model, emb=False, nui=True, dec=True)
    return model


def recomputing_model(stage1, ae):
    """images -> frozen trunk -> autoencoder; its "residual" output is reconstruction - features."""
    images = keras.Input(stage1.inputs[0].shape[1:], name="images")
    trunk = stage1.get_layer("trunk")
    trunk.trainable = False
    features = stage1.get_layer("trunk_features")(trunk(images))
    group = keras.ops.zeros_like(features[:, 0], dtype="int32")
    outputs = ae({"features": features, "group": group})
    residual = keras.layers.Subtract(name="residual")([outputs["reconstruction"], features])
    return keras.Model(images, {"residual": residual})


def run(name, alpha, size, ids, epochs, folder):
    dataset = load_synthreid("synth-a", os.path.join(folder, f"synth-a-{ids}"), ids=ids)
    table = dataset.train
    stage1 = build_embedding_model(alpha=alpha, input_shape=(*size, 3))
    feature_dim = stage1.get_layer("trunk_features").output.shape[-1]

    start = time.perf_counter()
    cache = cached_trunk_features(stage1, table, os.path.join(folder, f"{name}.npz"), BATCH)
    build = time.perf_counter() - start

    cached_model = autoencoder(stage1, feature_dim)
    cached_model.compile(optimizer=keras.optimizers.Adam(1e-3), loss={"reconstruction": "mse"})
    groups = np.zeros(len(table), np.int32)
    cached = timed_epochs(cached_model, feature_batches(cache.features, groups, BATCH), epochs)

    full = recomputing_model(stage1, autoencoder(stage1, feature_dim))
    full.compile(optimizer=keras.optimizers.Adam(1e-3), loss={"residual": "mse"})
    images = unlabeled_batches(
        table, BATCH, size, augment={"flip": 0.5, "crop_pad": 0.0}, seed=0, cache=True
    ).map(lambda x, _: (x, {"residual": keras.ops.zeros((BATCH, feature_dim))}))
    recomputed = timed_epochs(full, images, epochs, steps=len(table) // BATCH)

    print(
        f"{name}: {len(table)} images at {size[0]}x{size[1]}, MobileNet alpha {alpha} "
        f"({feature_dim} features); cache built in {build:.1f} s; per epoch: "
        f"cached {cached:.2f} s, recomputing the trunk {recomputed:.2f} s "
        f"-> {recomputed / cached:.0f}x faster",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=300, help="synth-a identities (SynthReID size)")
    parser.add_argument("--paper-ids", type=int, default=40, help="identities at 256x128")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after a warm-up")
    parser.add_argument("--skip-paper", action="store_true", help="only the SynthReID setting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="embae-cache-") as folder:
        run("synthreid", 0.25, (64, 32), args.ids, args.epochs, folder)
        if not args.skip_paper:
            run("paper", 1.0, (256, 128), args.paper_ids, args.epochs, folder)


if __name__ == "__main__":
    main()
