"""CUHK03 crops in two folders of ``PPPP_II.jpg`` files, scored by CUHK03's classic protocol.

Li, Zhao, Xiao & Wang, "DeepReID: Deep Filter Pairing Neural Network for
Person Re-identification", CVPR 2014. This is the layout of CUHK03's crops as
public mirrors keep them (e.g. the labelled boxes of ``labeled/train`` and
``labeled/val``), not the ``cuhk-03.mat`` release that the ``cuhk03`` loader
reads::

    ROOT/train/0000_00.jpg ... 0742_09.jpg
    ROOT/val/0000_00.jpg   ... 0099_09.jpg

File name ``PPPP_II.jpg``: PPPP the person, numbered per folder; II (00-09)
the image, 00-04 from the first camera of the person's camera pair and 05-09
from the second (CUHK03's convention).

Labels:
    pid: ``PPPP`` in ``train/``; ``10000 + PPPP`` in ``val/``, whose people are
        other people numbered on their own, so the two folders' pids never meet.
    camid: 0 for images 00-04, 1 for 05-09.

Split (the classic protocol's form): train = every image of ``train/``;
query = each ``val/`` person's first-camera images, gallery = their
second-camera images, scored with CUHK03's single-gallery-shot CMC
(:func:`keras_reid.evaluation.metrics.cuhk03_single_shot`) and mAP. A ``val/`` person
with images from one camera only trains nobody and cannot be queried: it is
left out of query and gallery, with a count in the log. In ``train/`` such
people are kept.

What the missing camera-pair index means: CUHK03 films each person with one
of five camera pairs, and this layout does not record which. Every first
camera is camid 0 and every second camid 1, so two people of different pairs
share camids although their cameras differ. The camera rules still hold
within a person (a query's true matches are always on the other camera of its
own pair), and since every gallery image is a second-camera image, no gallery
image shares a query's camid: the "-nd" scores (query camera excluded) equal
the plain ones. A per-camera model (EmbAE's cam θnui) sees two cameras, not
ten.

Example:
    >>> data = load_dataset("cuhk03_folders", "data/cuhk03_labeled")
    >>> data.train.pid.nunique(), data.query.pid.nunique()
    (743, 100)
"""

import logging
import os
import re

from keras_reid.data.dataset import (
    ReIDDataset,
    list_images,
    make_table,
    parse_folder,
    register_dataset,
    require_dir,
)
from keras_reid.errors import ReIDError

logger = logging.getLogger("keras_reid.data")

NAME = "cuhk03_folders"
PATTERN = re.compile(r"(\d{4})_(0\d)\.(jpg|jpeg|png)", re.IGNORECASE)
LAYOUT = "train/ and val/ of PPPP_II.jpg files, II 00-04 the first camera, 05-09 the second"
# val/'s people are others than train/'s, numbered from 0000 on their own.
VAL_PID_OFFSET = 10000
FIRST_CAMERA_IMAGES = 5


def _read(root, sub, offset):
    folder = require_dir(root, sub, NAME, LAYOUT)
    if not list_images(folder):
        raise ReIDError(
            f"{NAME}: no images in {folder} (expected {LAYOUT}); point the loader at the "
            "folder that holds train/ and val/."
        )

    def record(match, path):
        image = int(match.group(2))
        return {
            "path": path,
            "pid": offset + int(match.group(1)),
            "camid": 0 if image < FIRST_CAMERA_IMAGES else 1,
        }

    return parse_folder(folder, PATTERN, record, NAME, sub)


@register_dataset(NAME)
def cuhk03_folders(root):
    """CUHK03 crops as ``train/`` and ``val/`` folders of ``PPPP_II.jpg`` (module docstring).

    Args:
        root: the folder holding ``train/`` and ``val/``.

    Example:
        >>> load_dataset("cuhk03_folders", "data/cuhk03_labeled").summary()
    """
    train = _read(root, "train", 0)
    test = _read(root, "val", VAL_PID_OFFSET)
    cameras = {}
    for r in test:
        cameras.setdefault(r["pid"], set()).add(r["camid"])
    lonely = sorted(pid - VAL_PID_OFFSET for pid, cams in cameras.items() if len(cams) < 2)
    if lonely:
        logger.warning(
            "%s: %d person(s) of %s have images from one camera only and are left out of "
            "query and gallery (%s)",
            NAME,
            len(lonely),
            os.path.join(os.path.abspath(os.path.expanduser(str(root))), "val"),
            ", ".join(f"{pid:04d}" for pid in lonely[:5]) + (", ..." if len(lonely) > 5 else ""),
        )
    kept = [r for r in test if len(cameras[r["pid"]]) == 2]
    if not kept:
        raise ReIDError(
            f"{NAME}: no person in {root}/val has images from both cameras (00-04 and "
            "05-09), so there is nothing to query; check the folder."
        )
    return ReIDDataset(
        name=NAME,
        train=make_table(train, NAME),
        query=make_table([r for r in kept if r["camid"] == 0], NAME),
        gallery=make_table([r for r in kept if r["camid"] == 1], NAME),
    )
