"""VIPeR (Gray, Brennan & Tao, PETS 2007).

Gray, Brennan & Tao, "Evaluating Appearance Models for Recognition,
Reacquisition, and Tracking", IEEE PETS 2007.

Layout of the official zip ``VIPeR.v1.0``::

    ROOT/cam_a/000_45.bmp
    ROOT/cam_b/000_90.bmp

File name: ``{pid}_{angle}.bmp``; the first number is the person's id (632
ids, one image per camera). cam_a is camid 0, cam_b camid 1. Every id must
have images in both cameras.

Splits: the dataset ships no splits, so ten are drawn once from a fixed seed
(:func:`~keras_reid.data.dataset.half_split_ids`, ``np.random.default_rng(2018)``,
ten permutations of the sorted ids): split ``k`` trains on the first 316 ids of
permutation ``k`` (both cameras) and tests on the other 316, with query =
their cam_a images and gallery = their cam_b images.
"""

import re

from keras_reid.data.dataset import (
    ReIDDataset,
    half_split_ids,
    make_table,
    parse_folder,
    register_dataset,
    require_dir,
)
from keras_reid.errors import ReIDError

PATTERN = re.compile(r"(\d+)_(\d+)\.(bmp|png|jpg|jpeg)", re.IGNORECASE)
LAYOUT = "the layout of the official zip: cam_a/000_45.bmp, cam_b/000_90.bmp"


@register_dataset("viper")
def viper(root, split=0):
    """VIPeR: 632 ids, 2 cameras; ``split`` 0-9 of the fixed 316/316 halvings.

    Args:
        root: the folder holding ``cam_a/`` and ``cam_b/``.
        split: which of the 10 fixed train/test splits, 0-9 (default 0).

    Example:
        >>> viper = load_dataset("viper", "/data/VIPeR", split=3)
    """
    records = []
    for camid, sub in enumerate(("cam_a", "cam_b")):
        folder = require_dir(root, sub, "viper", LAYOUT)

        def record(match, path, camid=camid):
            return {"path": path, "pid": int(match.group(1)), "camid": camid}

        records += parse_folder(folder, PATTERN, record, "viper", sub)
    cameras = {}
    for r in records:
        cameras.setdefault(r["pid"], set()).add(r["camid"])
    lonely = sorted(pid for pid, cams in cameras.items() if len(cams) < 2)
    if lonely:
        raise ReIDError(
            f"viper: {len(lonely)} id(s) have an image in one camera only, e.g. "
            f"{', '.join(f'{p:03d}' for p in lonely[:3])}; each id needs cam_a and cam_b."
        )
    test_ids = set(half_split_ids(cameras, split, "viper")[1])
    train = [r for r in records if r["pid"] not in test_ids]
    query = [r for r in records if r["pid"] in test_ids and r["camid"] == 0]
    gallery = [r for r in records if r["pid"] in test_ids and r["camid"] == 1]
    return ReIDDataset(
        name="viper",
        train=make_table(train, "viper"),
        query=make_table(query, "viper"),
        gallery=make_table(gallery, "viper"),
    )
