"""CUHK-SYSU person crops (Xiao et al., CVPR 2017), a training-only source.

Xiao, Li, Wang, Lin & Wang, "Joint Detection and Identification Feature
Learning for Person Search", CVPR 2017.

The person-search release has whole scenes; re-ID work trains on the
labelled boxes cropped out of them (torchreid's ``cropped_images``: 11,934
ids, 34,574 crops). Accepted layout::

    ROOT/cropped_images/p11422_s16929.jpg        pid 11422 from scene s16929
    ROOT/cropped_images/p11422_s16929_1.jpg      (an optional crop index)

The pid is the number after ``p``. Scenes come from many unrelated photos
and films, not from a camera network, so camid is -1 (unknown) everywhere.
All crops train; query and gallery are empty tables.
"""

import re

from keras_reid.data.dataset import (
    ReIDDataset,
    make_table,
    parse_folder,
    register_dataset,
    require_dir,
)

PATTERN = re.compile(r"p(\d+)_s(\d+)(?:_\d+)?\.(jpg|jpeg|png)", re.IGNORECASE)
LAYOUT = "ROOT/cropped_images/p{pid}_s{scene}[_{index}].jpg"


@register_dataset("cuhk_sysu")
def cuhk_sysu(root):
    """CUHK-SYSU crops for training: every crop in train, no query or gallery.

    Example:
        >>> sysu = load_dataset("cuhk_sysu", "/data/cuhksysu")
    """
    folder = require_dir(root, "cropped_images", "cuhk_sysu", LAYOUT)
    records = parse_folder(
        folder,
        PATTERN,
        lambda match, path: {"path": path, "pid": int(match.group(1)), "camid": -1},
        "cuhk_sysu",
        "cropped_images",
    )
    return ReIDDataset(
        name="cuhk_sysu",
        train=make_table(records, "cuhk_sysu"),
        query=make_table([], "cuhk_sysu"),
        gallery=make_table([], "cuhk_sysu"),
    )
