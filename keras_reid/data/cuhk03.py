"""CUHK03 (Li et al., CVPR 2014), with the classic and the new (767/700) protocols.

Li, Zhao, Xiao & Wang, "DeepReID: Deep Filter Pairing Neural Network for
Person Re-identification", CVPR 2014. The new protocol is from Zhong, Zheng,
Cao & Li, "Re-ranking Person Re-identification with k-reciprocal Encoding",
CVPR 2017.

Accepted layouts (``VARIANT`` is ``labeled`` or ``detected``)::

    ROOT/cuhk-03.mat                                 (or ROOT/cuhk03_release/cuhk-03.mat)
    ROOT/cuhk03_new_protocol_config_VARIANT.mat      (protocol="new" only)

or, as torchreid leaves it, images already extracted beside the config file::

    ROOT/images_VARIANT/1_001_1_01.png
    ROOT/cuhk03_new_protocol_config_VARIANT.mat

``cuhk-03.mat`` (MATLAB v7.3, i.e. HDF5) holds the images: ``labeled`` and
``detected`` are cells of 5 camera pairs, each a cell of (ids x 10 images),
images 1-5 from the pair's first camera and 6-10 from its second; empty cells
(ids with fewer images) are skipped and counted. On first use the images of
the chosen variant are written ONCE to ``ROOT/images_VARIANT/`` as
``{campair}_{pid:03d}_{cam}_{idx:02d}.png`` (the names the new protocol's
``filelist`` uses), through a temporary folder renamed into place, so an
interrupted extraction never leaves a half-filled cache; delete the folder to
extract again.

Labels: an identity is a (camera pair, id in pair), so its pid is
``campair * 1000 + pid`` (pair 1's id 1 is 1001; no pair has 1000 ids), the
same in both protocols; camid is ``(campair - 1) * 2 + (cam - 1)``, 0-9, so
that cameras of different pairs are distinct.

Protocols:
    new: the split of the config file (767 train ids, 700 test ids; labeled
        7,368 / 1,400 / 5,328 train / query / gallery images, detected
        7,365 / 1,400 / 5,332). It has one split.
    classic: test set ``split`` (0-19) of the 20 in ``cuhk-03.mat``
        (``testsets``, 100 ids each): query = the test ids' images from the
        first camera of their pair, gallery = those from the second camera;
        every other id (1,367) trains. The original protocol also holds out
        100 validation ids; here they train, as in most later work.
"""

import logging
import os
import re
import shutil
import tempfile

import cv2
import h5py
import numpy as np

from keras_reid.data.dataset import (
    ReIDDataset,
    list_images,
    make_table,
    read_mat,
    register_dataset,
    require_dir,
)
from keras_reid.errors import ReIDError
from keras_reid.fileio import as_created

logger = logging.getLogger("keras_reid.data")

NAME = re.compile(r"(\d)_(\d{3})_([12])_(\d{2})\.png")
RAW_MAT = ("cuhk-03.mat", os.path.join("cuhk03_release", "cuhk-03.mat"))
LAYOUT = (
    "ROOT/cuhk-03.mat or ROOT/cuhk03_release/cuhk-03.mat, plus "
    "ROOT/cuhk03_new_protocol_config_{variant}.mat for protocol='new'"
)


@register_dataset("cuhk03")
def cuhk03(root, variant="labeled", protocol="new", split=0):
    """CUHK03: 1,467 ids over 5 camera pairs (see the module docstring for the rules).

    Args:
        root: the folder holding ``cuhk-03.mat`` and the new-protocol config files.
        variant: "labeled" (hand-drawn boxes) or "detected" (DPM boxes).
        protocol: "new" (767/700 ids, one split) or "classic" (20 splits of 100 test ids).
        split: the classic test set, 0-19; must be 0 for the new protocol.

    Example:
        >>> cuhk = load_dataset("cuhk03", "/data/cuhk03", variant="detected")
    """
    if variant not in ("labeled", "detected"):
        raise ReIDError(f"cuhk03: variant must be 'labeled' or 'detected'. Received: {variant=}")
    if protocol not in ("new", "classic"):
        raise ReIDError(f"cuhk03: protocol must be 'new' or 'classic'. Received: {protocol=}")
    if protocol == "new" and split != 0:
        raise ReIDError(f"cuhk03: the new protocol has one split (0). Received: {split=}")
    root = require_dir(root, "", "cuhk03", LAYOUT)
    images = extract_images(root, variant)
    if protocol == "new":
        tables = _new_protocol(root, variant, images)
    else:
        tables = _classic_protocol(root, images, split)
    return ReIDDataset(name="cuhk03", **{k: make_table(v, "cuhk03") for k, v in tables.items()})


def extract_images(root, variant):
    """``ROOT/images_VARIANT``, written from ``cuhk-03.mat`` unless it exists already."""
    target = os.path.join(root, f"images_{variant}")
    if os.path.isdir(target):
        return target
    raw = _raw_mat(root, f"images_{variant}/ is not there yet")
    logger.info("cuhk03: extracting the %s images of %s to %s (once)", variant, raw, target)
    scratch = as_created(tempfile.mkdtemp(prefix=f".images_{variant}-", dir=root))
    try:
        written, empty = _write_images(raw, variant, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    try:
        os.replace(scratch, target)
    except OSError:
        # Another process finished the same extraction first: its images are as good.
        shutil.rmtree(scratch, ignore_errors=True)
        if not os.path.isdir(target):
            raise
    logger.info("cuhk03: wrote %d images; skipped %d empty cells", written, empty)
    return target


def _raw_mat(root, why):
    for candidate in RAW_MAT:
        path = os.path.join(root, candidate)
        if os.path.isfile(path):
            return path
    raise ReIDError(f"cuhk03: no cuhk-03.mat under {root} ({why}; expected {LAYOUT}).")


def _open_raw(path):
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ReIDError(
            f"cuhk03: cannot read {path} as MATLAB v7.3 (HDF5) ({error}); "
            "expected the cuhk-03.mat of the official cuhk03_release.zip."
        ) from None


def _cell(mat, name, path):
    if name not in mat:
        raise ReIDError(f"cuhk03: {path} has no {name!r}; found: {', '.join(sorted(mat))}.")
    return np.array(mat[name]).ravel()


def _write_images(path, variant, folder):
    written = empty = 0
    with _open_raw(path) as mat:
        for campair, pair_ref in enumerate(_cell(mat, variant, path), start=1):
            # h5py shows MATLAB's column-major arrays transposed: .T gives (ids, 10).
            pair = np.array(mat[pair_ref]).T
            for pid, image_refs in enumerate(pair, start=1):
                for index, image_ref in enumerate(image_refs, start=1):
                    image = np.array(mat[image_ref])
                    if image.ndim != 3:  # an empty cell: this id has fewer images
                        empty += 1
                        continue
                    cam = 1 if index <= 5 else 2
                    name = f"{campair}_{pid:03d}_{cam}_{index:02d}.png"
                    rgb = np.ascontiguousarray(image.T)  # (3, W, H) -> (H, W, 3)
                    if not cv2.imwrite(os.path.join(folder, name), rgb[..., ::-1]):
                        raise ReIDError(f"cuhk03: could not write {name} to {folder}.")
                    written += 1
    return written, empty


def _record(name, folder):
    match = NAME.fullmatch(name)
    if match is None:
        raise ReIDError(
            f"cuhk03: image name {name!r} in {folder} is not campair_pid_cam_idx.png "
            "(e.g. 1_001_1_01.png); delete the folder to extract it again."
        )
    campair, pid, cam = (int(g) for g in match.groups()[:3])
    return {
        "path": os.path.join(folder, name),
        "pid": campair * 1000 + pid,
        "camid": (campair - 1) * 2 + cam - 1,
    }


def _new_protocol(root, variant, images):
    path = os.path.join(root, f"cuhk03_new_protocol_config_{variant}.mat")
    config = read_mat(path, "cuhk03", ["train_idx", "query_idx", "gallery_idx", "filelist"])
    names = [str(np.ravel(entry)[0]) for entry in config["filelist"].ravel()]
    on_disk = set(list_images(images))
    missing = [n for n in names if n not in on_disk]
    if missing:
        raise ReIDError(
            f"cuhk03: {len(missing)} image(s) of {path} are not in {images}, e.g. "
            f"{', '.join(missing[:3])}; delete {images} to extract it again."
        )
    tables = {}
    for split in ("train", "query", "gallery"):
        rows = config[f"{split}_idx"].ravel().astype(np.int64) - 1  # MATLAB is 1-based
        bad = rows[(rows < 0) | (rows >= len(names))]
        if len(bad):
            raise ReIDError(
                f"cuhk03: {split}_idx of {path} points outside its filelist of "
                f"{len(names)} names, e.g. {int(bad[0]) + 1}."
            )
        tables[split] = [_record(names[r], images) for r in rows]
    return tables


def _classic_protocol(root, images, split):
    raw = _raw_mat(root, "protocol='classic' reads its 20 test sets from it")
    with _open_raw(raw) as mat:
        testsets = _cell(mat, "testsets", raw)
        if not isinstance(split, (int, np.integer)) or not 0 <= split < len(testsets):
            raise ReIDError(
                f"cuhk03: the classic protocol has {len(testsets)} splits (0-"
                f"{len(testsets) - 1}). Received: {split=}"
            )
        pairs = np.array(mat[testsets[split]]).T.astype(np.int64)  # (100, 2): campair, pid
    test_pids = {int(campair) * 1000 + int(pid) for campair, pid in pairs}
    tables = {"train": [], "query": [], "gallery": []}
    for name in list_images(images):
        record = _record(name, images)
        if record["pid"] not in test_pids:
            tables["train"].append(record)
        else:
            tables["query" if record["camid"] % 2 == 0 else "gallery"].append(record)
    return tables
