"""Generating a preset: the plan, the parallel rendering, the cache and the registry."""

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
from dataclasses import asdict

import cv2
import numpy as np

from keras_reid.checks import is_int
from keras_reid.data.dataset import register_dataset
from keras_reid.data.market1501 import read_market_layout
from keras_reid.data.synthreid.camera import render_image
from keras_reid.data.synthreid.people import sample_person
from keras_reid.data.synthreid.presets import get_preset
from keras_reid.data.synthreid.specs import (
    _DISTRACTOR,
    _IMAGE,
    _PERSON,
    _PLAN,
    _SPLIT,
    META_FILE,
    SPLITS,
    VERSION,
    _code,
    _rng,
)
from keras_reid.environment import renderer_versions
from keras_reid.errors import ReIDError
from keras_reid.fileio import install_folder, remove_stale_temporaries, temporary_folder

logger = logging.getLogger("keras_reid.data")


def _check_int(name, value, low, high):
    # Command-line options arrive as strings: accept "12" but not 12.5 or True.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not is_int(value, numpy=True):
        raise ReIDError(f"SynthReID: {name} must be an integer. Received: {name}={value!r}")
    if not low <= value <= high:
        raise ReIDError(
            f"SynthReID: {name} must be between {low} and {high}. Received: {name}={value!r}"
        )
    return int(value)


def _check_size(size):
    # Accept (H, W), [H, W] or "HxW" (the command line's spelling).
    parsed = size
    if isinstance(size, str):
        parsed = size.lower().split("x")
    try:
        height, width = (int(v) for v in parsed)
        if isinstance(size, (list, tuple)) and any(isinstance(v, (bool, float)) for v in size):
            raise ValueError
    except (TypeError, ValueError):
        raise ReIDError(
            f"SynthReID: size must be (height, width) in pixels. Received: size={size!r}"
        ) from None
    if not (32 <= height <= 1024 and 16 <= width <= 1024):
        raise ReIDError(
            "SynthReID: size must have 32 <= height <= 1024 and 16 <= width <= 1024. "
            f"Received: size={size!r}"
        )
    return height, width


def _resolve(preset, seed, ids, size):
    spec = get_preset(preset)
    seed = _check_int("seed", seed, 0, 2**32 - 1)
    # 4 ids is the least that leaves two for training and two for testing;
    # Market names have four digits for the pid.
    ids = spec.ids if ids is None else _check_int("ids", ids, 4, 9999)
    return spec, seed, ids, _check_size(size)


def spec_fingerprint(spec):
    """The hex SHA-256 of a preset's every parameter: a changed preset is another generation."""
    return hashlib.sha256(repr(asdict(spec)).encode()).hexdigest()


def _meta(spec, seed, ids, size):
    return {
        "generator": "SynthReID",
        "version": VERSION,
        "preset": spec.name,
        "spec_sha256": spec_fingerprint(spec),
        "seed": seed,
        "ids": ids,
        "size": list(size),
    }


# --------------------------------------------------------------------------
# The plan: which images exist, in which split, with which random keys.


def _file_name(pid, camera, frame):
    return f"{pid:04d}_c{camera + 1}s1_{frame:06d}_00.jpg"


def plan(preset, seed=0, ids=None):
    """Every image a generation writes: a list of (relative path, who, camera, image key).

    ``who`` is ("person", pid) or ("distractor", k); the image key seeds the
    image's Generator. Identity p's cameras and counts do not depend on
    ``ids``, only its split does.

    Example:
        >>> len(plan("synth-a", seed=0, ids=12)) > 12
        True
    """
    spec, seed, ids, _ = _resolve(preset, seed, ids, (128, 64))
    code = _code(spec.name)
    count = len(spec.cameras)
    order = _rng(seed, code, _SPLIT).permutation(np.arange(1, ids + 1))
    train = set(order[: ids // 2].tolist())
    low, high = spec.cameras_per_id
    tasks = []
    for pid in range(1, ids + 1):
        rng = _rng(seed, code, _PLAN, pid)
        k = int(rng.integers(low, high + 1))
        cameras = np.sort(rng.choice(count, k, replace=False)).tolist()
        counts = rng.integers(spec.images_per_camera[0], spec.images_per_camera[1] + 1, size=k)
        # Up to k-1 query cameras: at least one camera is gallery-only, so
        # every query has a match on another camera.
        queries = set(rng.choice(cameras, int(rng.integers(1, k)), replace=False).tolist())
        for camera, n in zip(cameras, counts.tolist(), strict=True):
            frames = int(rng.integers(0, 500_000)) + np.cumsum(rng.integers(5, 80, size=n))
            for index, frame in enumerate(frames.tolist()):
                if pid in train:
                    split = "bounding_box_train"
                elif index == 0 and camera in queries:
                    split = "query"
                else:
                    split = "bounding_box_test"
                path = os.path.join(split, _file_name(pid, camera, frame))
                tasks.append((path, ("person", pid), camera, (pid, camera, index)))
    n_distractors = int(round(spec.distractors * (ids - ids // 2)))
    cameras = _rng(seed, code, _DISTRACTOR).integers(0, count, size=n_distractors).tolist()
    for k, camera in enumerate(cameras):
        # Frame k is unique, so distractor names never collide.
        path = os.path.join("bounding_box_test", _file_name(0, camera, k))
        tasks.append((path, ("distractor", k), camera, (0, camera, k)))
    return tasks


def _person(spec, seed, who):
    kind, key = who
    tag = _PERSON if kind == "person" else _DISTRACTOR
    return sample_person(_rng(seed, _code(spec.name), tag, key, 0), spec.palette)


def _write_jpeg(path, image, quality):
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise ReIDError(f"SynthReID: could not encode {path} as JPEG.")
    with open(path, "wb") as file:
        file.write(data.tobytes())


def _render_chunk(job):
    spec, seed, size, root, tasks = job
    code = _code(spec.name)
    people = {}
    for path, who, camera, key in tasks:
        if who not in people:
            people[who] = _person(spec, seed, who)
        rng = _rng(seed, code, _IMAGE, *key)
        image = render_image(spec, camera, people[who], rng, size, who[0] == "distractor")
        quality = np.clip(spec.cameras[camera].jpeg + rng.integers(-5, 6), 10, 100)
        _write_jpeg(os.path.join(root, path), image, quality)
    return len(tasks)


def _default_workers():
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _render_all(spec, seed, size, root, tasks, workers):
    # Chunks hold whole identities (one attribute draw each) and are small
    # enough to keep every worker busy to the end.
    by_who = {}
    for task in tasks:
        by_who.setdefault(task[1], []).append(task)
    groups = list(by_who.values())
    per_chunk = max(1, len(groups) // (workers * 8))
    chunks = [
        [task for group in groups[i : i + per_chunk] for task in group]
        for i in range(0, len(groups), per_chunk)
    ]
    jobs = [(spec, seed, size, root, chunk) for chunk in chunks]
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            _render_chunk(job)
        return
    # fork starts workers at once on Linux (spawn would import TensorFlow in
    # each); elsewhere the platform default (spawn) is the safe choice.
    # OpenCV's thread pool does not survive a fork: a child touching the
    # threads of the parent's pool waits forever. So the parent stops its
    # pool before forking (one thread: the children run OpenCV serially,
    # the processes already fill the cores) and restores it afterwards.
    method = "fork" if sys.platform.startswith("linux") else None
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with multiprocessing.get_context(method).Pool(workers) as pool:
            for _ in pool.imap_unordered(_render_chunk, jobs):
                pass
    finally:
        cv2.setNumThreads(threads)


def read_meta(root):
    """The parsed ``synthreid.json`` of a folder, or None when there is none (or unreadable)."""
    try:
        with open(os.path.join(root, META_FILE), encoding="utf-8") as file:
            meta = json.load(file)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("generator") == "SynthReID" else None


def _same_params(meta, expected):
    return meta is not None and all(meta.get(k) == v for k, v in expected.items())


def generate(preset, out, seed=0, ids=None, size=(128, 64), overwrite=False, workers=None):
    """Write a SynthReID preset to ``out`` in the Market-1501 layout; return ``out``.

    The images are written into a temporary sibling folder which is renamed
    to ``out`` once complete, with ``synthreid.json`` recording the
    parameters and the counts: a failure or an interruption leaves nothing
    behind. The files are byte-identical for the same arguments, whatever
    ``workers``.

    Args:
        preset: a name in ``PRESETS`` ("synth-a", "synth-b", "synth-c", "synth-d") or a
            :class:`PresetSpec`.
        out: the folder to create.
        seed: integer >= 0 drawing the people, their cameras and every image. Default 0.
        ids: number of identities (>= 4), None for the preset's default (300).
        size: (height, width) of the crops. Default (128, 64).
        overwrite: replace ``out`` if it holds a previous SynthReID generation.
            A non-empty folder that is not one is never deleted. Default False.
        workers: processes rendering the images; None uses the available cores
            (at most 8). Default None.

    Returns:
        The absolute path of ``out``.

    Raises:
        ReIDError: an unknown preset, a bad seed, ids or size, or a non-empty
            ``out`` (without overwrite=True, or not a SynthReID folder).

    Example:
        >>> root = generate("synth-a", "/tmp/synth-a", seed=0, ids=40)
        >>> load_dataset("market1501", root).train.pid.nunique()
        20
    """
    spec, seed, ids, size = _resolve(preset, seed, ids, size)
    workers = _default_workers() if workers is None else _check_int("workers", workers, 1, 256)
    out = os.path.abspath(os.path.expanduser(str(out)))
    existing = os.path.isdir(out) and bool(os.listdir(out))
    if os.path.exists(out) and not os.path.isdir(out):
        raise ReIDError(f"SynthReID: {out} exists and is not a folder; choose another `out`.")
    if existing and not overwrite:
        raise ReIDError(
            f"SynthReID: {out} exists and is not empty; pass overwrite=True (--overwrite) "
            "to replace it or choose another folder."
        )
    if existing and read_meta(out) is None:
        raise ReIDError(
            f"SynthReID: {out} is not empty and holds no {META_FILE}, so it is not a "
            "SynthReID folder; overwrite=True only replaces those. Remove it yourself "
            "or choose another folder."
        )
    parent = os.path.dirname(out)  # temporary_folder creates it
    tasks = plan(spec, seed, ids)
    meta = _meta(spec, seed, ids, size)
    # Recorded, not compared: a folder rendered by other versions is still the
    # same generation's data (the cache's folders are keyed by them instead).
    meta["renderer"] = renderer_versions()
    meta["counts"] = {
        split: sum(t[0].startswith(split + os.sep) for t in tasks) for split in SPLITS
    }
    remove_stale_temporaries(parent, name=os.path.basename(out), recursive=False)
    temp = temporary_folder(out)
    try:
        for split in SPLITS:
            os.mkdir(os.path.join(temp, split))
        _render_all(spec, seed, size, temp, tasks, workers)
        with open(os.path.join(temp, META_FILE), "w", encoding="utf-8") as file:
            json.dump(meta, file, indent=2)
        # Another process may finish first. The same generation is
        # byte-identical to ours, so it is kept; another one is replaced only
        # with overwrite, and never silently.
        install_folder(
            temp,
            out,
            keep_existing=lambda: _same_params(read_meta(out), meta),
            replace=overwrite,
        )
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    logger.info("SynthReID: wrote %d %s images to %s", len(tasks), spec.name, out)
    return out


# --------------------------------------------------------------------------
# Registry entries


def cache_root(preset, seed=0, ids=None, size=(128, 64)):
    """The cache folder of a generation, keyed by the renderer's library versions.

    ``$KERAS_REID_HOME/synthreid/opencv-{v}-numpy-{v}/{preset}-seed{s}-ids{n}-{H}x{W}``;
    KERAS_REID_HOME defaults to ~/.cache/keras_reid. Another OpenCV or numpy
    draws other pixels (:func:`keras_reid.environment.renderer_versions`), so an
    upgrade or a downgrade generates its own folder instead of reusing images
    rendered by the other versions.
    """
    spec, seed, ids, (height, width) = _resolve(preset, seed, ids, size)
    home = os.path.expanduser(os.environ.get("KERAS_REID_HOME", "~/.cache/keras_reid"))
    renderer = "-".join(f"{k}-{v}" for k, v in renderer_versions().items())
    return os.path.abspath(
        os.path.join(
            home, "synthreid", renderer, f"{spec.name}-seed{seed}-ids{ids}-{height}x{width}"
        )
    )


def load_synthreid(preset, root=None, seed=0, ids=None, size=(128, 64)):
    """A SynthReID preset as a ReIDDataset, generated on first use.

    Args:
        preset: "synth-a", "synth-b", "synth-c" or "synth-d".
        root: the folder of the generation; None uses :func:`cache_root`. Default None.
        seed, ids, size: as in :func:`generate`.

    A folder holding a generation with the same parameters is read; a missing
    or empty one is generated; any other content is an error (except in the
    cache, where a generation by another SynthReID version, or of another
    definition of the preset, is replaced).
    """
    spec, seed, ids, size = _resolve(preset, seed, ids, size)
    expected = _meta(spec, seed, ids, size)
    cached = root is None
    root = (
        cache_root(spec, seed, ids, size)
        if cached
        else os.path.abspath(os.path.expanduser(str(root)))
    )
    meta = read_meta(root)
    if not cached and meta is not None and "spec_sha256" not in meta:
        # Written before generations recorded their preset's fingerprint: judged
        # by the other parameters (the cache, which this version fills, is rebuilt).
        expected = {k: v for k, v in expected.items() if k != "spec_sha256"}
    if not _same_params(meta, expected):
        empty = not os.path.exists(root) or (os.path.isdir(root) and not os.listdir(root))
        # The cache is this library's own: a generation by another SynthReID
        # version or of another definition of the preset is replaced.
        stale = (
            cached
            and meta is not None
            and (
                meta.get("version") != VERSION
                or meta.get("spec_sha256") != expected.get("spec_sha256")
            )
        )
        if not (empty or stale):
            found = {k: meta.get(k) for k in expected} if meta else f"no {META_FILE}"
            raise ReIDError(
                f"{spec.name}: {root} is not a SynthReID generation with {expected} "
                f"(found {found}); pass another root, or delete the folder to regenerate it."
            )
        logger.info(
            "%s: generating SynthReID (%d ids, seed %d) into %s", spec.name, ids, seed, root
        )
        generate(spec, root, seed=seed, ids=ids, size=size, overwrite=stale)
        meta = read_meta(root)
    dataset = read_market_layout(root, spec.name)
    found = {
        "bounding_box_train": len(dataset.train),
        "query": len(dataset.query),
        "bounding_box_test": len(dataset.gallery),
    }
    if found != meta.get("counts"):
        raise ReIDError(
            f"{spec.name}: {root} holds {found} images but {META_FILE} records "
            f"{meta.get('counts')}; it was modified: delete it to regenerate."
        )
    return dataset


@register_dataset("synth-a")
def synth_a(root=None, seed=0, ids=None, size=(128, 64)):
    """SynthReID synth-a, source domain (city by day): 6 cameras, 300 ids, ~4,800 images.

    Generated on first use into the cache (see :func:`load_synthreid`).

    Example:
        >>> load_dataset("synth-a", ids=40).summary()
    """
    return load_synthreid("synth-a", root, seed, ids, size)


@register_dataset("synth-b")
def synth_b(root=None, seed=0, ids=None, size=(128, 64)):
    """SynthReID synth-b, target domain (winter evening): 6 cameras, 300 ids, ~4,900 images.

    Generated on first use into the cache (see :func:`load_synthreid`).

    Example:
        >>> load_dataset("synth-b", ids=40).summary()
    """
    return load_synthreid("synth-b", root, seed, ids, size)


@register_dataset("synth-d")
def synth_d(root=None, seed=0, ids=None, size=(128, 64)):
    """SynthReID synth-d, target domain with a realistic gap (dusk): 6 cameras, 300 ids.

    See the design notes above ``PRESETS``: the target of the EmbAE SynthReID tables.

    Example:
        >>> load_dataset("synth-d", ids=40).summary()
    """
    return load_synthreid("synth-d", root, seed, ids, size)


@register_dataset("synth-c")
def synth_c(root=None, seed=0, ids=None, size=(128, 64)):
    """SynthReID synth-c, source domain (campus and mall): 5 cameras, 300 ids, ~4,200 images.

    Generated on first use into the cache (see :func:`load_synthreid`).

    Example:
        >>> load_dataset("synth-c", ids=40).summary()
    """
    return load_synthreid("synth-c", root, seed, ids, size)
