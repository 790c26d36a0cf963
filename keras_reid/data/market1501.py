"""Market-1501 (Zheng et al., ICCV 2015).

Layout of the official zip ``Market-1501-v15.09.15``::

    ROOT/bounding_box_train/0002_c1s1_000451_03.jpg
    ROOT/query/0001_c1s1_001051_00.jpg
    ROOT/bounding_box_test/-1_c1s1_000401_03.jpg

File name: ``{pid}_c{cam}s{sequence}_{frame}_{box}.jpg``; cameras 1-6 become
camid 0-5. In the gallery, pid -1 is junk and pid 0 a distractor: both are
kept with their pid so that the evaluation applies the official rule (junk
ignored, distractors count as negatives).
"""

import re

from keras_reid.data.dataset import (
    ReIDDataset,
    make_table,
    parse_folder,
    register_dataset,
    require_dir,
)

PATTERN = re.compile(r"(-?\d+)_c(\d)s(\d)_(\d+)_(\d+)\.(jpg|jpeg|png|bmp)", re.IGNORECASE)
LAYOUT = "the layout of the official zip: bounding_box_train/, query/, bounding_box_test/"


def read_market_layout(
    root,
    name,
    train="bounding_box_train",
    query="query",
    gallery="bounding_box_test",
    pattern=PATTERN,
    layout=LAYOUT,
    distractor_pids=(0,),
):
    """Read the three Market-style folders into a :class:`ReIDDataset`.

    Shared by Market-1501, DukeMTMC-reID and SynthReID, which use the same folders.
    pid 0 marks distractors in Market-1501 and SynthReID (DukeMTMC-reID has none).
    """

    def record(match, path):
        return {"path": path, "pid": int(match.group(1)), "camid": int(match.group(2)) - 1}

    def train_record(match, path):
        # The train split has no junk or distractors in the official release;
        # should a re-packaged copy carry some, they cannot be trained on.
        return record(match, path) if int(match.group(1)) > 0 else None

    tables = {}
    for split, sub, to_record in (
        ("train", train, train_record),
        ("query", query, record),
        ("gallery", gallery, record),
    ):
        folder = require_dir(root, sub, name, layout)
        tables[split] = make_table(parse_folder(folder, pattern, to_record, name, sub), name)
    return ReIDDataset(name=name, distractor_pids=tuple(distractor_pids), **tables)


@register_dataset("market1501")
def market1501(root):
    """Market-1501: 751 train ids (12,936 images), 3,368 queries, 19,732 gallery images."""
    return read_market_layout(root, "market1501")
