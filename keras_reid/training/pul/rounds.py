"""One PUL iteration's parts: clustering and selection, the fine-tuned model, pseudo-labels."""

import keras
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from keras_reid.data.dataset import ReIDDataset
from keras_reid.errors import ReIDError
from keras_reid.layers.classification import ClassificationHead
from keras_reid.serving.extract import extract_features


def cluster_and_select(features, clusters, threshold, seed=0, n_init=10):
    """PUL's clustering and reliable-sample selection of one iteration.

    The features are L2-normalised and clustered by k-means (the released
    code clusters ResNet-50's raw pool5 features and normalises only for the
    similarities; on unit vectors, k-means' euclidean distance ranks as the
    cosine that selects). Each cluster's center is the real sample nearest
    its centroid (``argmin`` over the samples of ``kmeans.transform``, as in
    the released code, not the centroid itself); a sample is reliable when
    its cosine similarity to at least one center is above ``threshold``, and
    its label is its own k-means cluster (not necessarily that center's).

    Args:
        features: float array [N, D] of N samples.
        clusters: K, the number of k-means clusters, 2 <= K <= N.
        threshold: λ, the cosine similarity a reliable sample must exceed.
        seed: k-means' random state. Default 0.
        n_init: k-means restarts. Default 10.

    Returns:
        ``(labels, selected, centers)``: int [N] cluster of every sample,
        bool [N] reliable or not, int [K] the index of each cluster's center sample.

    Example:
        >>> labels, selected, centers = cluster_and_select(features, 750, 0.85)
        >>> reliable_images, reliable_labels = table[selected], labels[selected]

    Fan, Zheng & Yang, "Unsupervised Person Re-identification: Clustering and
    Fine-tuning", ACM TOMM 2018, Sec. 3.2 (Eq. 4-5).
    """
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or not len(features):
        raise ReIDError(f"cluster_and_select: features must be [N, D]; got shape {features.shape}.")
    if not 2 <= clusters <= len(features):
        raise ReIDError(
            f"cluster_and_select: clusters must be in [2, {len(features)}] (the number of "
            f"samples). Received: clusters={clusters}"
        )
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.maximum(norms, 1e-12)
    kmeans = KMeans(n_clusters=clusters, n_init=n_init, random_state=seed).fit(unit)
    centers = np.argmin(kmeans.transform(unit), axis=0)
    # Clipped: rounding may put a center's similarity to itself a hair above 1.
    similarity = np.clip(unit @ unit[centers].T, -1.0, 1.0)  # [N, K]
    selected = (similarity > threshold).any(axis=1)
    return kmeans.labels_.astype(np.int64), selected, centers


def copy_weights(source, target, skip=("logits",)):
    """Copy the weights of ``source``'s layers into ``target``'s layers of the same name.

    Top-level layers are matched by name (a nested trunk is one layer), except
    the names in ``skip`` (the classifier, which PUL makes new every iteration).

    Returns:
        the names of the layers whose weights were copied.

    Raises:
        ReIDError: a layer of ``target`` that holds weights and is not skipped
            is missing from ``source`` or has weights of other shapes.

    Example:
        >>> copy_weights(start_model, finetune_model)  # all but "logits"
    """
    theirs = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in target.layers:
        if layer.name in skip or not layer.weights:
            continue
        if layer.name not in theirs:
            raise ReIDError(
                f"model {source.name!r} has no layer {layer.name!r} to copy into "
                f"{target.name!r}; start from a model of the same architecture."
            )
        mine = [tuple(w.shape) for w in layer.weights]
        other = [tuple(w.shape) for w in theirs[layer.name].weights]
        if mine != other:
            raise ReIDError(
                f"layer {layer.name!r}: {source.name!r} has weights {other}, {target.name!r} "
                f"{mine}; start from a model of the same architecture."
            )
        layer.set_weights(theirs[layer.name].get_weights())
        copied.append(layer.name)
    return copied


def pul_model(start, clusters, source=None, dropout=0.5, classifier_std=0.001, seed=0):
    """The start model's architecture with a new classifier over ``clusters`` pseudo-identities.

    The start model is cloned up to its "embedding" output (any classifier it
    had is dropped); a new :class:`~keras_reid.layers.ClassificationHead`
    "logits" (dropout, Dense ``clusters`` with a N(0, ``classifier_std``)
    kernel and zero bias, as the released code) is put on the embedding; every
    other weight is copied from ``source`` by layer name (:func:`copy_weights`).

    Args:
        start: the start model (a dict-output model with an "embedding" output).
        clusters: K, the classifier's outputs.
        source: the model the weights come from (default: ``start``).
        dropout: the classifier's dropout rate. Default 0.5.
        classifier_std: the kernel initialisation's standard deviation. Default 0.001.
        seed: the kernel initialisation's seed. Default 0.

    Example:
        >>> model = pul_model(start, 750)
        >>> sorted(model.output_names)
        ['embedding', 'logits']
    """
    clone = keras.models.clone_model(start)
    embedding = clone.output["embedding"]
    head = ClassificationHead(clusters, dropout=dropout, dtype="float32", name="logits")
    model = keras.Model(
        clone.input, {"embedding": embedding, "logits": head(embedding)}, name=start.name
    )
    kernel = np.random.default_rng(seed).normal(0.0, classifier_std, tuple(head.dense.kernel.shape))
    head.dense.kernel.assign(kernel.astype("float32"))
    copy_weights(source if source is not None else start, model)
    return model


def pseudo_labels(model, target, options, t, seed, verbose):
    """Iteration ``t``'s table of every target train image: cluster, selected, center."""
    features = extract_features(
        model, target.train, tta="flip", output=options.features_output, progress=verbose == 1
    )
    threshold = options.threshold(t)
    labels, selected, centers = cluster_and_select(
        features, options.clusters, threshold, seed=seed, n_init=options.n_init
    )
    if not selected.any():
        raise ReIDError(
            f"PUL iteration {t}: no target image has a cosine similarity above λ_{t} = "
            f"{threshold:g} to a cluster center; lower pul.lambda_start (or pul.lambda_step)."
        )
    table = target.train[["path", "camid"]].copy()
    table["cluster"] = labels
    table["selected"] = selected
    table["center"] = np.isin(np.arange(len(table)), centers)
    return table


def reliable_dataset(target, table, t):
    """The reliable images of a pseudo-label table as a labelled dataset (pid = cluster)."""
    rows = table[table["selected"]]
    name = f"{target.label}-pul{t}"
    train_table = pd.DataFrame(
        {
            "path": rows["path"].to_numpy(),
            "pid": rows["cluster"].to_numpy(np.int64),
            "camid": rows["camid"].to_numpy(np.int64),
            "dataset": name,
        }
    )
    return ReIDDataset(name, train_table, target.query, target.gallery)
