"""Linear probes: how much of a label (a camera, a dataset) a feature set holds."""

import keras
import numpy as np
import tensorflow as tf


def probe_accuracy(features, labels, train, steps=1000, batch_size=128, seed=0):
    """Held-out accuracy of a linear softmax classifier from ``features`` to ``labels``.

    A probe of what a representation encodes: e.g. the camera from z_id,
    which an embedding meant to ignore the camera should make hard. The
    features are standardised with the training rows' mean and std, the probe
    trained for ``steps`` Adam updates (learning rate 1e-2) and scored on the
    other rows.

    Args:
        features: float [N, D].
        labels: [N] class labels (any integers).
        train: bool [N]: the rows the probe is trained on; it is scored on the rest.
        steps: Adam updates. Default 1000.
        batch_size: rows per update. Default 128.
        seed: seeds the initialisation and the batch order. Default 0.

    Returns:
        the accuracy on the held-out rows, a float.

    Example:
        >>> probe_accuracy(z_id, table.camid.to_numpy(), ~np.isin(table.pid, held_out))
    """
    features = np.asarray(features, np.float32)
    train = np.asarray(train, bool)
    if features.ndim != 2 or len(features) != len(labels) or len(train) != len(labels):
        raise ValueError(
            f"probe_accuracy: expected features [N, D] with N labels and N train flags. "
            f"Received: features {features.shape}, {len(labels)} labels, {len(train)} flags"
        )
    if train.all() or not train.any():
        raise ValueError("probe_accuracy: train must mark some rows, not all: the rest are scored.")
    keras.utils.set_random_seed(seed)
    mean, std = features[train].mean(0), features[train].std(0) + 1e-6
    x = (features - mean) / std
    _, classes = np.unique(np.asarray(labels), return_inverse=True)
    probe = keras.Sequential(
        [keras.Input((x.shape[1],)), keras.layers.Dense(int(classes.max()) + 1, "softmax")]
    )
    probe.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    batches = tf.data.Dataset.from_tensor_slices((x[train], classes[train]))
    batches = batches.shuffle(int(train.sum()), seed=seed).repeat().batch(batch_size)
    probe.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return float(probe.evaluate(x[~train], classes[~train], verbose=0)[1])
