"""WARD (Martinel & Micheloni, CVPRW 2012): 70 ids seen by 3 cameras.

Martinel & Micheloni, "Re-identify People in Wide Area Camera Network",
CVPR Workshops 2012. Used as a training source by EmbAE.

Accepted layout: one folder per camera directly under ROOT, named
``camera_N``, ``cameraN``, ``cam_N`` or ``camN`` (any case), N = 1, 2, 3
(camid N - 1); all three must be there. Each camera folder holds EITHER
images named with the person's id first, or one folder per id::

    ROOT/camera_1/0001_000123.png       (pid = the leading integer, then "_")
    ROOT/camera_2/0001_000456.png
    ...
    ROOT/cam1/0001/000123.png            (pid = the folder's integer name; any image name)

Anything else under ROOT (a README, a zip) is ignored, counted and logged;
a camera folder mixing images and id folders, or holding a folder whose
name is not an integer, is an error.

Splits (option ``split``):
    "all" (default): every image trains; query and gallery are empty, as
        EmbAE uses WARD.
    "half": a fixed random halving of the ids (35/35 for WARD's 70;
        :func:`~keras_reid.data.dataset.half_split_ids` with seed 2018):
        train = the first half (all cameras); query = the other half's
        camera-1 images, gallery = their camera-2 and camera-3 images.
"""

import logging
import os
import re

from keras_reid.data.dataset import (
    ReIDDataset,
    half_split_ids,
    list_images,
    make_table,
    parse_folder,
    register_dataset,
    require_dir,
)
from keras_reid.errors import ReIDError

logger = logging.getLogger("keras_reid.data")

CAMERA = re.compile(r"cam(?:era)?_?([123])", re.IGNORECASE)
FLAT = re.compile(r"(\d+)_.*\.(png|jpg|jpeg|bmp)", re.IGNORECASE)
ANY = re.compile(r".+")
LAYOUT = "ROOT/camera_{1,2,3}/ (or cam1..cam3) holding {pid}_*.png or {pid}/*.png"


@register_dataset("ward")
def ward(root, split="all"):
    """WARD: 70 ids, 3 cameras; all images train unless ``split="half"``.

    Args:
        root: the folder holding the three camera folders.
        split: "all" (default, training only) or "half" (35 train ids, 35 test ids).

    Example:
        >>> ward = load_dataset("ward", "/data/WARD")
    """
    if split not in ("all", "half"):
        raise ReIDError(f"ward: split must be 'all' or 'half'. Received: {split=}")
    root = require_dir(root, "", "ward", LAYOUT)
    cameras, ignored = {}, []
    for entry in sorted(os.listdir(root)):
        match = CAMERA.fullmatch(entry)
        if match is None or not os.path.isdir(os.path.join(root, entry)):
            ignored.append(entry)
        elif int(match.group(1)) in cameras:
            raise ReIDError(
                f"ward: two folders for camera {match.group(1)} under {root}: "
                f"{cameras[int(match.group(1))]} and {entry}; keep one."
            )
        else:
            cameras[int(match.group(1))] = entry
    if sorted(cameras) != [1, 2, 3]:
        raise ReIDError(
            f"ward: found camera folder(s) {sorted(cameras.values()) or 'none'} under {root}; "
            f"expected {LAYOUT}."
        )
    if ignored:
        logger.info("ward: ignored %d entries under %s: %s", len(ignored), root, ignored[:5])
    records = []
    for cam, sub in sorted(cameras.items()):
        records += _read_camera(os.path.join(root, sub), cam - 1)
    test_ids = set()
    if split == "half":
        test_ids = set(half_split_ids((r["pid"] for r in records), 0, "ward", n_splits=1)[1])
    return ReIDDataset(
        name="ward",
        train=make_table([r for r in records if r["pid"] not in test_ids], "ward"),
        query=make_table([r for r in records if r["pid"] in test_ids and r["camid"] == 0], "ward"),
        gallery=make_table([r for r in records if r["pid"] in test_ids and r["camid"] > 0], "ward"),
    )


def _read_camera(folder, camid):
    subfolders = sorted(e for e in os.listdir(folder) if os.path.isdir(os.path.join(folder, e)))
    what = os.path.basename(folder)
    if not subfolders:
        return parse_folder(
            folder,
            FLAT,
            lambda m, path: {"path": path, "pid": int(m.group(1)), "camid": camid},
            "ward",
            what,
        )
    not_ids = [e for e in subfolders if not e.isdigit()]
    if not_ids:
        raise ReIDError(
            f"ward: folder(s) {', '.join(not_ids[:3])} in {folder} are not "
            f"integer person ids (expected {LAYOUT})."
        )
    if list_images(folder):
        raise ReIDError(
            f"ward: {folder} mixes images and id folders; use one layout per camera "
            f"(expected {LAYOUT})."
        )
    records = []
    for sub in subfolders:
        records += parse_folder(
            os.path.join(folder, sub),
            ANY,
            lambda m, path, pid=int(sub): {"path": path, "pid": pid, "camid": camid},
            "ward",
            f"{what}/{sub}",
        )
    return records
