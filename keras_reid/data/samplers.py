"""Training batches: P×K, mixed, unlabelled and cross-domain, drawn with stateless ops.

- :func:`pk_batches`: infinite ``(images, pids)`` batches of P identities × K
  images, K consecutive rows per identity, each batch from one table (the
  batch-hard triplet sampling of Hermans et al., 2017, section 3.3); with a
  :class:`~keras_reid.data.labels.ClassMap`, the labels are class indices.
- :func:`mixed_batches`: the same P×K batches drawn from the union of the
  tables as one identity space, so a batch may mix datasets; labels are class
  indices (MSML's training on four merged datasets).
- :func:`unlabeled_batches`: infinite shuffled batches of a target-domain table
  whose labels are all -1 (DIEN / EmbAE).
- :func:`cross_domain_batches`: both at once for DIEN, each replica's slice of
  the batch holding its share of a source P×K group and of the target images.

Randomness: the training pipelines are TensorFlow ops end to end (no Python
generator, so nothing holds the GIL or can deadlock at exit). Batch ``n`` is
drawn with stateless random ops from the seed ``(seed, n)``: its table, its
ids, its rows and its augmentation. The same seed therefore gives the same
batches, pixel for pixel, with or without ``cache``, whatever the thread
scheduling; every new iterator over a pipeline starts the same stream again
(``model.fit`` with ``steps_per_epoch`` keeps one iterator across epochs; a
second training stage should use another seed).
"""

import numpy as np
import pandas as pd
import tensorflow as tf

from keras_reid.data.augment import resolve_augment
from keras_reid.data.dataset import named_tables
from keras_reid.data.labels import ClassMap
from keras_reid.data.pipeline import (
    AUTOTUNE,
    _batches,
    _check_image_size,
    _non_negative,
    _positive,
    _Rows,
)
from keras_reid.errors import ReIDError


def _base_seed(seed):
    """``seed`` as an int64 tensor; None draws one (the pipeline is then fixed once built)."""
    if seed is None:
        seed = int(np.random.default_rng().integers(2**62))
    return tf.constant(int(seed), tf.int64)


class _PKSampler:
    """Row indices of P×K batches, drawn with stateless ops from a per-batch seed.

    The rows of the tables are laid out id by id in ``order``; id ``j`` owns
    ``order[start[j] : start[j] + count[j]]`` and belongs to pool ``table[j]``.
    A pool is a table, or with ``pooled`` the union of all the tables. An id is
    a table's pid, or its ``keys`` (one array per table, e.g. class indices).
    """

    def __init__(self, named, offsets, p, k, keys=None, pooled=False):
        if keys is None:
            keys = [frame["pid"].to_numpy() for _, frame in named]
        pools = [
            (np.arange(len(frame), dtype=np.int64) + offset, key)
            for (_, frame), offset, key in zip(named, offsets, keys, strict=True)
        ]
        if pooled:
            pools = [tuple(np.concatenate(parts) for parts in zip(*pools, strict=True))]
        order, start, count, table = [], [], [], []
        position = 0
        for index, (rows, key) in enumerate(pools):
            for _, members in pd.Series(rows).groupby(key, sort=True):
                order.append(members.to_numpy())
                start.append(position)
                count.append(len(members))
                table.append(index)
                position += len(members)
        sizes = np.array([len(rows) for rows, _ in pools], np.float64)
        self.p, self.k = p, k
        self.width = max(max(count), k)
        self.order = tf.constant(np.concatenate(order))
        self.start = tf.constant(start, tf.int64)
        self.count = tf.constant(count, tf.int64)
        self.table = tf.constant(table, tf.int64)
        self.log_weights = tf.constant(np.log(sizes / sizes.sum())[None], tf.float32)

    def __call__(self, seed):
        table_seed, id_seed, row_seed, fill_seed = tf.unstack(tf.random.split(seed, 4))
        # A table (pool) in proportion to its images.
        table = tf.random.stateless_categorical(self.log_weights, 1, table_seed, tf.int64)[0, 0]
        # P of its ids without replacement: the P largest random keys.
        keys = tf.random.stateless_uniform(tf.shape(self.table), id_seed)
        ids = tf.math.top_k(tf.where(self.table == table, keys, -1.0), self.p).indices
        count = tf.gather(self.count, ids)[:, None]
        # K of each id's images without replacement, the same way.
        keys = tf.random.stateless_uniform([self.p, self.width], row_seed)
        valid = tf.range(self.width, dtype=tf.int64)[None] < count
        positions = tf.cast(tf.math.top_k(tf.where(valid, keys, -1.0), self.k).indices, tf.int64)
        # An id with fewer than K images: all of them, then random repeats, so
        # the batch has as many distinct positives as the id offers.
        repeats = tf.random.stateless_uniform([self.p, self.k], fill_seed)
        repeats = tf.cast(repeats * tf.cast(count, tf.float32), tf.int64)
        slots = tf.range(self.k, dtype=tf.int64)[None]
        positions = tf.where(slots < count, positions, tf.minimum(repeats, count - 1))
        rows = tf.gather(self.order, tf.gather(self.start, ids)[:, None] + positions)
        return tf.reshape(rows, [self.p * self.k])

    def batches(self, seed, start_step=0):
        """An infinite dataset of (row indices [P·K], augmentation seed [2]) from ``start_step``."""
        base = _base_seed(seed)

        def draw(step):
            sample_seed, augment_seed = tf.unstack(tf.random.split(tf.stack([base, step]), 2))
            return self(sample_seed), augment_seed

        return tf.data.Dataset.counter(start=start_step).map(draw)


def pk_batches(
    tables,
    p=18,
    k=4,
    image_size=(256, 128),
    augment=True,
    seed=None,
    with_meta=False,
    num_replicas=1,
    cache=False,
    start_step=0,
    class_map=None,
):
    """Infinite P×K training batches: P identities, K images each, one table per batch.

    Each batch comes from one table, chosen at random with probability
    proportional to its number of images (so several datasets are trained
    together but never mixed in a batch, as EmbAE requires). Inside a batch,
    the K images of an identity are consecutive rows. An identity with at
    least K images gives K distinct ones; one with fewer gives all of its
    images plus random repeats. The labels are the table's own pids, or with
    ``class_map`` their class indices (for a softmax loss); the batches are the
    same rows either way.

    Args:
        tables: a labelled table (DataFrame with columns path, pid, camid,
            dataset), a list of them, or a dict name -> table.
        p: identities per batch. Default 18.
        k: images per identity. Default 4.
        image_size: ``(height, width)``. Default ``(256, 128)``.
        augment: ``True`` for the default :class:`~keras_reid.data.augment.Augment`
            (flip + TriNet crop), ``None``/``False`` for none, or an ``Augment``
            (or a dict of its arguments). Default True.
        seed: an int for repeatable batches and augmentation; None draws one
            at random when the pipeline is built. Default None.
        with_meta: when True the labels are a dict ``{"pid", "camid",
            "dataset"}`` of int32 ``[P·K]``, ``dataset`` being the table's index
            in ``tables`` (in dict order for a dict), plus ``"label"`` (the class
            indices) with a ``class_map``. Default False.
        num_replicas: replicas the global batch is split across along axis 0
            (``tf.distribute.MirroredStrategy``); P must be a multiple so that
            each replica gets whole K-groups. Default 1.
        cache: decode and resize every image once and keep them in memory as
            uint8 (``N × H × W × 3`` bytes: 1.2 GB for Market-1501 at 256×128),
            then gather batches from there. Fastest for small datasets. Default
            False.
        start_step: the index of the first batch: the stream from batch
            ``start_step`` on is exactly the tail of the stream from 0 (a
            resumed run continues where it stopped). Default 0.
        class_map: a :class:`~keras_reid.data.labels.ClassMap` holding every
            identity of the tables: the labels are then class indices
            0..C-1. Default None (the pids).

    Returns:
        a ``tf.data.Dataset`` of ``(images, labels)``: images float32
        ``[P·K, H, W, 3]`` raw 0-255 RGB; labels int32 pids (or class indices)
        ``[P·K]`` or the dict above. Use it with
        ``model.fit(..., steps_per_epoch=steps_per_epoch(tables, p, k))``.

    Raises:
        ReIDError: for a table with a pid < 0 (unlabelled: use
            :func:`unlabeled_batches`), a table with fewer than P ids, P or K
            below 1, P not a multiple of ``num_replicas``, or an identity the
            ``class_map`` lacks.

    Example:
        >>> market = load_dataset("market1501", "/data/market")
        >>> train = pk_batches(market.train, p=18, k=4, seed=0)
        >>> images, pids = next(iter(train))  # [72, 256, 128, 3], [72]
    """
    image_size = _check_pk_arguments(p, k, num_replicas, start_step, image_size)
    named = _labelled_tables(tables, "pk_batches")
    for name, table in named:
        ids = table["pid"].nunique()
        if ids < p:
            raise ReIDError(
                f"{name}: {ids} identities, fewer than P={p} per batch; use a smaller P or "
                "add data."
            )
    classes = _classes(class_map, named)
    rows = _Rows(named, classes=None if classes is None else np.concatenate(classes))
    # Grouped by class, a table spanning two datasets never merges their ids;
    # for a one-dataset table the groups and the draws are those of the pids.
    sampler = _PKSampler(named, rows.offsets, p, k, keys=classes)
    return _batches(
        rows,
        sampler.batches(seed, start_step),
        image_size,
        resolve_augment(augment),
        with_meta,
        cache,
    )


def mixed_batches(
    tables,
    p=18,
    k=4,
    image_size=(256, 128),
    augment=True,
    seed=None,
    with_meta=False,
    num_replicas=1,
    cache=False,
    start_step=0,
    class_map=None,
):
    """Infinite P×K batches from the union of the tables: one identity space, mixed datasets.

    All training tables are merged into one set of dataset-qualified
    identities (Market-1501's pid 1 and DukeMTMC's pid 1 are two), as MSML
    trains one model on Market-1501, MARS, CUHK03 and CUHK-SYSU together (Xiao
    et al., 2017, section 4.1: "we train one single model for all
    benchmarks"). The paper does not say how its batches mix the datasets;
    here they are one set: each batch holds P distinct identities drawn
    uniformly from the union, so a batch may mix datasets and each dataset's
    expected share of a batch is its share of the identities (not of the
    images: CUHK-SYSU's many identities with few images each weigh more than
    Market-1501's 751 with 17 each). K
    images each, consecutive, as in :func:`pk_batches` (K distinct images when
    an identity has them, else all of them plus repeats). The labels are class
    indices, so identities of different datasets never collide in a metric or
    softmax loss.

    Randomness, ``seed``, ``start_step``, ``cache``, ``augment`` and
    ``num_replicas`` behave exactly as in :func:`pk_batches`: batch ``n`` is
    drawn from ``(seed, n)`` alone.

    Args:
        tables: labelled tables (columns path, pid, camid, dataset): a table,
            a list of them, or a dict name -> table.
        p: identities per batch. Default 18.
        k: images per identity. Default 4.
        image_size: ``(height, width)``. Default ``(256, 128)``.
        augment: as in :func:`pk_batches`. Default True.
        seed: an int for repeatable batches; None draws one. Default None.
        with_meta: labels as a dict ``{"pid", "camid", "dataset", "label"}`` of
            int32 ``[P·K]`` (``dataset``: the table's index in ``tables``;
            ``label``: the class index). Default False.
        num_replicas: replicas the batch is split across; P must be a
            multiple. Default 1.
        cache: keep the decoded images in memory, as in :func:`pk_batches`.
            Default False.
        start_step: the index of the first batch, as in :func:`pk_batches`. Default 0.
        class_map: the :class:`~keras_reid.data.labels.ClassMap` giving the
            class indices; it must hold every identity of the tables. Default
            None: ``ClassMap.from_tables(tables)`` (the same map a run builds
            from the same tables).

    Returns:
        a ``tf.data.Dataset`` of ``(images [P·K, H, W, 3] float32, labels [P·K]
        int32 class indices)``, or the dict above as labels.

    Raises:
        ReIDError: for a table with a pid < 0, fewer than P identities in the
            union, P or K below 1, P not a multiple of ``num_replicas``, or an
            identity the ``class_map`` lacks.

    Example:
        >>> train = [market.train, mars.train, cuhk03.train, cuhk_sysu.train]
        >>> classes = ClassMap.from_tables(train)
        >>> batches = mixed_batches(train, p=32, k=4, seed=0, class_map=classes)
        >>> images, labels = next(iter(batches))  # [128, 256, 128, 3], [128] in 0..C-1
    """
    image_size = _check_pk_arguments(p, k, num_replicas, start_step, image_size)
    named = _labelled_tables(tables, "mixed_batches")
    if class_map is None:
        class_map = ClassMap.from_tables([table for _, table in named])
    classes = _classes(class_map, named)
    ids = len(np.unique(np.concatenate(classes)))
    if ids < p:
        names = ", ".join(name for name, _ in named)
        raise ReIDError(
            f"mixed batches: {ids} identities in the union of {names}, fewer than P={p} per "
            "batch; use a smaller P or add data."
        )
    rows = _Rows(named, classes=np.concatenate(classes))
    sampler = _PKSampler(named, rows.offsets, p, k, keys=classes, pooled=True)
    return _batches(
        rows,
        sampler.batches(seed, start_step),
        image_size,
        resolve_augment(augment),
        with_meta,
        cache,
    )


def _check_pk_arguments(p, k, num_replicas, start_step, image_size):
    """The checked ``(height, width)``, after checking the P×K batch arguments."""
    _positive(p=p, k=k, num_replicas=num_replicas)
    _non_negative(start_step=start_step)
    if p % num_replicas:
        raise ReIDError(
            f"P={p} identities per batch cannot be split evenly across {num_replicas} "
            f"replicas: each replica needs whole groups of K images; use a P that is a "
            f"multiple of {num_replicas}."
        )
    return _check_image_size(image_size)


def _labelled_tables(tables, caller):
    """``named_tables(tables)``, refusing a table with unlabelled rows."""
    named = named_tables(tables)
    for name, table in named:
        unlabelled = int((table["pid"] < 0).sum())
        if unlabelled:
            raise ReIDError(
                f"{name}: {unlabelled} image(s) have pid < 0 (unlabelled); {caller} takes "
                "labelled tables only: use unlabeled_batches for target-domain images."
            )
    return named


def _classes(class_map, named):
    """Each table's class indices under ``class_map`` (None without one)."""
    if class_map is None:
        return None
    if not isinstance(class_map, ClassMap):
        raise ReIDError(
            "class_map must be a keras_reid.data.ClassMap (ClassMap.from_tables(train)). "
            f"Received: class_map of type {type(class_map).__name__}"
        )
    classes = []
    for name, table in named:
        try:
            classes.append(class_map.labels(table))
        except ReIDError as error:
            raise ReIDError(f"{name}: {error}") from None
    return classes


def unlabeled_batches(
    table,
    batch_size,
    image_size=(256, 128),
    augment=True,
    seed=None,
    with_meta=False,
    cache=False,
    start_step=0,
):
    """Infinite shuffled batches of a table, labels ignored (all -1).

    For the unlabelled target domain of DIEN and EmbAE. Every row is seen once
    per pass, in a new random order each pass; passes follow one another
    without a gap, so a batch may straddle two of them.

    Args:
        table: a table with columns path, pid, camid (its pids are ignored).
        batch_size: images per batch.
        image_size: ``(height, width)``. Default ``(256, 128)``.
        augment: as in :func:`pk_batches`. Default True.
        seed: an int for repeatable batches; None draws one. Default None.
        with_meta: labels as ``{"pid": -1, "camid", "dataset": 0}``. Default False.
        cache: keep the decoded images in memory, as in :func:`pk_batches`.
            Default False.
        start_step: the index of the first batch, as in :func:`pk_batches`. Default 0.

    Returns:
        a ``tf.data.Dataset`` of ``(images [B, H, W, 3] float32, pids [B] int32 = -1)``.

    Example:
        >>> target = unlabeled_batches(duke.train, batch_size=72, seed=0)
        >>> source = pk_batches(market.train, seed=0)
        >>> both = tf.data.Dataset.zip(source, target)
    """
    _positive(batch_size=batch_size)
    _non_negative(start_step=start_step)
    image_size = _check_image_size(image_size)
    named = named_tables(table)
    rows = _Rows(named, pids=-1)
    count = len(rows.paths)
    base = _base_seed(seed)

    def permutation(epoch):
        # Pass ``n`` and batch ``n`` take the two halves of the split of
        # (seed, n): the order and the augmentation are independent streams.
        keys = tf.random.stateless_uniform([count], tf.random.split(tf.stack([base, epoch]))[0])
        return tf.cast(tf.argsort(keys), tf.int64)

    def augment_seed(step):
        return tf.random.split(tf.stack([base, step]))[1]

    indices = (
        tf.data.Dataset.counter().map(permutation).unbatch().batch(batch_size, drop_remainder=True)
    )
    indices = tf.data.Dataset.zip(indices, tf.data.Dataset.counter().map(augment_seed))
    # Only index batches are skipped: no image is read for them.
    indices = indices.skip(start_step)
    return _batches(rows, indices, image_size, resolve_augment(augment), with_meta, cache)


def cross_domain_batches(
    tables,
    target,
    p=18,
    k=4,
    target_size=None,
    image_size=(256, 128),
    augment=True,
    seed=None,
    with_meta=False,
    num_replicas=1,
    cache=False,
    start_step=0,
    class_map=None,
):
    """Infinite batches of a labelled source P×K group plus unlabelled target images.

    For unsupervised domain adaptation (DIEN): every batch holds P source
    identities × K images, drawn exactly as :func:`pk_batches` draws them, and
    ``target_size`` images of the target domain, drawn as
    :func:`unlabeled_batches` draws them (every target image once per pass, in
    a new order each pass). The target's pids are ignored: its rows are
    labelled -1, whatever its table holds.

    Layout: the global batch is ``num_replicas`` equal slices, one per replica
    (``tf.distribute.MirroredStrategy`` splits a batch along axis 0 into
    contiguous slices), and slice ``r`` is replica ``r``'s share of the source
    group (P/num_replicas whole identities, K consecutive rows each) followed by
    its ``target_size / num_replicas`` target rows. Every replica thus sees both
    domains, as a loss mixing them (:class:`~keras_reid.losses.CrossDomainTripletLoss`)
    needs. With one replica: the P·K source rows, then the target rows.

    Randomness: the source rows are those of ``pk_batches(tables, p, k, ...,
    seed=seed, num_replicas=num_replicas, class_map=class_map)``, pixel for
    pixel; the target stream has its own seed derived from ``seed``, so the two
    are independent. Batch ``n`` depends on ``(seed, n)`` alone, and
    ``start_step`` behaves as in :func:`pk_batches`.

    Args:
        tables: the labelled source table(s), as :func:`pk_batches` takes them.
        target: the unlabelled target-domain table (columns path, pid, camid;
            pids ignored), a list of them, or a dict name -> table.
        p: source identities per batch. Default 18.
        k: images per source identity. Default 4.
        target_size: target images per batch, a multiple of ``num_replicas``.
            Default None: P·K, as many as the source rows.
        image_size: ``(height, width)``. Default ``(256, 128)``.
        augment: as in :func:`pk_batches`, for both domains. Default True.
        seed: an int for repeatable batches; None draws one. Default None.
        with_meta: labels as a dict ``{"pid", "camid", "dataset", "domain"}`` of
            int32 ``[P·K + target_size]``, plus ``"label"`` with a
            ``class_map``. ``domain`` is 0 for source rows, 1 for target rows;
            target rows have pid and label -1 and ``dataset`` numbered after
            the sources (``len(tables)`` for the first target table). Default False.
        num_replicas: replicas the batch is split across; P and
            ``target_size`` must be multiples. Default 1.
        cache: keep the decoded images of the sources and of the target in
            memory, as in :func:`pk_batches`. Default False.
        start_step: the index of the first batch, as in :func:`pk_batches`. Default 0.
        class_map: a :class:`~keras_reid.data.labels.ClassMap` of the source
            identities: source labels are then class indices. Default None (pids).

    Returns:
        a ``tf.data.Dataset`` of ``(images, labels)``: images float32
        ``[P·K + target_size, H, W, 3]`` raw 0-255 RGB; labels int32 (source
        pids or class indices, -1 for target rows) or the dict above.

    Raises:
        ReIDError: for no target or an empty one, a target table with the same
            images as a source table, a bad ``target_size``, P not a multiple
            of ``num_replicas``, or anything :func:`pk_batches` refuses.

    Example:
        >>> batches = cross_domain_batches(market.train, duke.train, p=16, k=4, seed=0)
        >>> images, labels = next(iter(batches))  # [128, 256, 128, 3]; labels[64:] == -1
        >>> model.compile(loss={"embedding": CrossDomainTripletLoss(0.3, lam=1.0)}, ...)
    """
    image_size = _check_pk_arguments(p, k, num_replicas, start_step, image_size)
    if target_size is None:
        target_size = p * k
    _positive(target_size=target_size)
    if target_size % num_replicas:
        raise ReIDError(
            f"target_size={target_size} target images per batch cannot be split evenly across "
            f"{num_replicas} replicas; use a target_size that is a multiple of {num_replicas}."
        )
    targets = _target_tables(target)
    sources = named_tables(tables)
    for target_name, target_table in targets:
        target_paths = set(target_table["path"].astype(str))
        for source_name, source_table in sources:
            if target_paths == set(source_table["path"].astype(str)):
                raise ReIDError(
                    f"target {target_name} is also a source ({source_name}): the same "
                    f"{len(target_paths)} images; give data.target the unlabelled dataset of "
                    "the target domain, not a training source."
                )
    seed = int(np.random.default_rng().integers(2**62)) if seed is None else int(seed)
    # The source keeps ``seed`` (its batches are pk_batches'); the target's
    # seed is a hash of it, so the two streams draw independently.
    target_seed = int(np.random.SeedSequence([seed % 2**64, 1]).generate_state(1, np.uint64)[0])
    source = pk_batches(
        tables,
        p,
        k,
        image_size,
        augment,
        seed=seed,
        with_meta=with_meta,
        num_replicas=num_replicas,
        cache=cache,
        start_step=start_step,
        class_map=class_map,
    )
    unlabelled = unlabeled_batches(
        target,
        target_size,
        image_size,
        augment,
        seed=target_seed >> 2,  # an int64
        with_meta=with_meta,
        cache=cache,
        start_step=start_step,
    )
    if with_meta:
        source = source.map(lambda images, meta: (images, _with_domain(meta, 0)))
        unlabelled = unlabelled.map(
            lambda images, meta: (
                images,
                _with_domain(
                    {**meta, "dataset": meta["dataset"] + len(sources)},
                    1,
                    -1 if class_map is not None else None,
                ),
            )
        )
    batch_size = p * k + target_size

    def interleave(source_part, target_part):
        # [replica 0: source, target, replica 1: source, target, ...]
        source_part = tf.reshape(source_part, [num_replicas, -1, *source_part.shape[1:]])
        target_part = tf.reshape(target_part, [num_replicas, -1, *target_part.shape[1:]])
        both = tf.concat([source_part, target_part], axis=1)
        return tf.reshape(both, [batch_size, *both.shape[2:]])

    return (
        tf.data.Dataset.zip(source, unlabelled)
        .map(
            lambda source_batch, target_batch: tf.nest.map_structure(
                interleave, source_batch, target_batch
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
        .prefetch(AUTOTUNE)
    )


def _with_domain(meta, domain, label=None):
    """``meta`` plus a ``domain`` column (and a constant ``label`` when given)."""
    column = tf.fill(tf.shape(meta["pid"]), tf.constant(domain, tf.int32))
    meta = {**meta, "domain": column}
    if label is not None:
        meta["label"] = tf.fill(tf.shape(meta["pid"]), tf.constant(label, tf.int32))
    return meta


def _target_tables(target):
    """``named_tables(target)``; a missing or empty target is a ReIDError saying what to give."""
    fix = (
        "give data.target, the unlabelled target-domain dataset (a spec such as "
        "dukemtmc:/data/duke)."
    )
    if target is None or (isinstance(target, (list, tuple, dict)) and not target):
        raise ReIDError(f"cross_domain batches need a target: {fix}")
    named = named_tables(target, allow_empty=True)
    for name, table in named:
        if table.empty:
            raise ReIDError(f"cross_domain batches need a target, and {name} has no images: {fix}")
    return named
