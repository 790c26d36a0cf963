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

Settings (``--settings``, default all): ``synthreid-convnet`` (64x32,
small_convnet: the SynthReID configs' trunk), ``synthreid`` (64x32, MobileNet
alpha 0.25) and ``paper`` (256x128, MobileNet alpha 1.0; fewer images, since
only the per-epoch ratio matters). The first epoch of each (tracing, pipeline
start-up) is left out of the mean; the one-off cost of building the cache is
printed too. Figures depend on the machine and its load; nothing is asserted.

Usage:
    python bench/embae_cache.py [--settings synthreid-convnet,paper] [--ids N] [--epochs 3]
"""

import argparse
import os
import tempfile
import time

import keras
import numpy as np

from keras_reid.data.samplers import unlabeled_batches
from keras_reid.data.synthreid import load_synthreid
from keras_reid.models import build_embedding_model
from keras_reid.models.embae import build_embae_model, copy_stage1_head, set_trainable
from keras_reid.training.embae import StageOptions, fit_stage
from keras_reid.training.feature_cache import cached_trunk_features

BATCH = 128
SETTINGS = {
    # name: (backbone options, image size, default identities)
    "synthreid": ({"backbone": "mobilenet", "alpha": 0.25}, (64, 32), 300),
    "synthreid-convnet": ({"backbone": "small_convnet"}, (64, 32), 300),
    "paper": ({"backbone": "mobilenet", "alpha": 1.0}, (256, 128), 150),
}


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of every epoch of a ``fit``."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def autoencoder(stage1, feature_dim):
    model = build_embae_model(feature_dim, embedding_dim=128, groups=1)
    copy_stage1_head(stage1, model)
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


def run(name, ids, epochs, folder):
    options, size, default_ids = SETTINGS[name]
    ids = ids or default_ids
    dataset = load_synthreid("synth-a", os.path.join(folder, f"synth-a-{ids}"), ids=ids)
    table = dataset.train
    stage1 = build_embedding_model(**options, input_shape=(*size, 3))
    feature_dim = stage1.get_layer("trunk_features").output.shape[-1]

    start = time.perf_counter()
    cache = cached_trunk_features(
        stage1, table, os.path.join(folder, f"{name}.npz"), BATCH, progress=False
    )
    build = time.perf_counter() - start

    # Cached: the recipe's own stage (pre-training: θ_nui and θ_dec trained);
    # the first epoch (tracing, pipeline start-up) is left out of the mean.
    cached = EpochTimer()
    groups = np.zeros(len(table), np.int32)
    stage = StageOptions(epochs + 1, 1e-3, BATCH)
    model = autoencoder(stage1, feature_dim)
    fit_stage(model, ("nui", "dec"), stage, cache.features, groups, 0, 0, callbacks=[cached])

    # Recomputed: the same autoencoder and stage behind the frozen trunk.
    recomputed = EpochTimer()
    ae = autoencoder(stage1, feature_dim)
    set_trainable(ae, emb=False, nui=True, dec=True)
    full = recomputing_model(stage1, ae)
    full.compile(optimizer=keras.optimizers.Adam(1e-3), loss={"residual": "mse"})
    images = unlabeled_batches(
        table, BATCH, size, augment={"flip": 0.5, "crop_pad": 0.0}, seed=0, cache=True
    ).map(lambda x, _: (x, {"residual": keras.ops.zeros((BATCH, feature_dim))}))
    full.fit(
        images,
        epochs=epochs + 1,
        steps_per_epoch=len(table) // BATCH,
        verbose=0,
        callbacks=[recomputed],
    )

    per_cached = float(np.mean(cached.seconds[1:]))
    per_recomputed = float(np.mean(recomputed.seconds[1:]))
    trunk = options["backbone"] + (f" alpha {options['alpha']}" if "alpha" in options else "")
    print(
        f"{name}: {len(table)} images at {size[0]}x{size[1]}, {trunk} ({feature_dim} features); "
        f"cache built once in {build:.1f} s; seconds per autoencoder epoch: cached "
        f"{per_cached:.2f}, recomputing the trunk {per_recomputed:.2f} -> "
        f"{per_recomputed / per_cached:.1f}x faster",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings",
        default=",".join(SETTINGS),
        help=f"comma-separated, of: {', '.join(SETTINGS)} (default: all)",
    )
    parser.add_argument(
        "--ids", type=int, default=None, help="synth-a identities (default: per setting)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after a warm-up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="embae-cache-") as folder:
        for name in args.settings.split(","):
            run(name, args.ids, args.epochs, folder)


if __name__ == "__main__":
    main()
