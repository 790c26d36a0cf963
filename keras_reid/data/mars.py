"""MARS (Zheng et al., ECCV 2016): video re-ID, 1,261 ids, 6 cameras, ~20k tracklets.

Zheng, Bie, Sun, Wang, Su, Wang & Tian, "MARS: A Video Benchmark for
Large-Scale Person Re-identification", ECCV 2016.

Layout of the official release (the ``info/`` folder is the separate
``MARS-evaluation`` download)::

    ROOT/bbox_train/0003/0003C4T0003F001.jpg   pid 0003, camera 4, tracklet 3, frame 1
    ROOT/bbox_test/0000/0000C1T0001F001.jpg    pid 0000: distractors
    ROOT/bbox_test/00-1/00-1C1T0001F001.jpg    pid 00-1: junk
    ROOT/info/train_name.txt, test_name.txt, tracks_train_info.mat,
              tracks_test_info.mat, query_IDX.mat

Rows of the tables are frames; ``tracklet`` is a tracklet index unique
within its table (query and gallery share the test indices, so a query
tracklet has the same index in both) and ``frame`` the F number. Cameras 1-6
become camid 0-5; junk keeps pid -1 and distractors pid 0.

With ``info/`` (all five files), the official protocol: ``tracks_*_info`` is
an N x 4 matrix [start, end, pid, camera] whose 1-based rows index the name
lists; query = the rows ``query_IDX`` (1-based) of the test tracks (1,980);
gallery = all test tracks, the queries included, as the official evaluation
code has it (it discards same-id same-camera gallery tracks anyway; torchreid
drops them from the gallery instead). Images are not checked one by one.

Without ``info/``, tracklets come from the file names (pid, camera, T) and
the test split is derived: query = for each test id (> 0) seen in at least
two cameras, its lowest-numbered tracklet in each camera; gallery = all test
tracklets. Junk or distractor folders in ``bbox_train`` (none in the
release) are skipped and counted.
"""

import logging
import os
import re

import numpy as np
import pandas as pd

from keras_reid.data.dataset import (
    ReIDDataset,
    make_table,
    parse_folder,
    read_mat,
    register_dataset,
    require_dir,
)
from keras_reid.errors import ReIDError
from keras_reid.fileio import read_text

logger = logging.getLogger("keras_reid.data")

PATTERN = re.compile(r"(\d{4}|00-1)C(\d)T(\d+)F(\d+)\.(jpg|jpeg|png)", re.IGNORECASE)
LAYOUT = "the official layout: bbox_train/0001/0001C1T0001F001.jpg, bbox_test/..., [info/]"
INFO = {
    "train_name.txt": None,
    "test_name.txt": None,
    "tracks_train_info.mat": "track_train_info",
    "tracks_test_info.mat": "track_test_info",
    "query_IDX.mat": "query_IDX",
}


@register_dataset("mars")
def mars(root):
    """MARS: 625 train ids (8,298 tracklets), 1,980 query and 12,180 gallery tracklets.

    Example:
        >>> mars = load_dataset("mars", "/data/MARS")
        >>> mars.query.groupby("tracklet").path.apply(list)  # frames of each query
    """
    folders = {sub: require_dir(root, sub, "mars", LAYOUT) for sub in ("bbox_train", "bbox_test")}
    info = os.path.join(os.path.dirname(folders["bbox_train"]), "info")
    if os.path.isdir(info):
        tables = _official(info, folders)
    else:
        logger.info("mars: no info/ folder; deriving tracklets and the query from file names")
        tables = _derived(folders)
    tables = {split: make_table(table, "mars", video=True) for split, table in tables.items()}
    return ReIDDataset(name="mars", **tables)


def _official(info, folders):
    missing = [f for f in INFO if not os.path.isfile(os.path.join(info, f))]
    if missing:
        raise ReIDError(
            f"mars: {info} lacks {', '.join(missing)}; add the official MARS-evaluation "
            "files or remove info/ to derive the split from file names."
        )
    mats = {
        f: read_mat(os.path.join(info, f), "mars", [key])[key]
        for f, key in INFO.items()
        if key is not None
    }
    test = _frames(info, "test", mats["tracks_test_info.mat"], folders["bbox_test"])
    query_rows = mats["query_IDX.mat"].ravel().astype(np.int64) - 1  # MATLAB is 1-based
    n_tracks = len(mats["tracks_test_info.mat"])
    if query_rows.min(initial=0) < 0 or query_rows.max(initial=0) >= n_tracks:
        raise ReIDError(f"mars: query_IDX.mat points outside the {n_tracks} test tracks.")
    return {
        "train": _frames(info, "train", mats["tracks_train_info.mat"], folders["bbox_train"]),
        "query": test[test.tracklet.isin(query_rows)],
        "gallery": test,
    }


def _frames(info, split, tracks, folder):
    """One row per frame of every track of ``tracks`` ([start, end, pid, camera], 1-based)."""
    list_path = os.path.join(info, f"{split}_name.txt")
    lines = read_text(list_path, "mars: file list").splitlines()
    names = np.array([line.strip() for line in lines if line.strip()])
    tracks = np.asarray(tracks, dtype=np.int64).reshape(-1, 4)
    start, end = tracks[:, 0] - 1, tracks[:, 1]
    if (start < 0).any() or (end > len(names)).any() or (end <= start).any():
        row = int(np.flatnonzero((start < 0) | (end > len(names)) | (end <= start))[0])
        raise ReIDError(
            f"mars: row {row + 1} of tracks_{split}_info.mat, frames {start[row] + 1}-"
            f"{end[row]}, does not fit the {len(names)} names of {list_path}."
        )
    track = np.repeat(np.arange(len(tracks)), end - start)
    rows = np.concatenate([np.arange(s, e) for s, e in zip(start, end, strict=True)] + [[]])
    frame_names = pd.Series(names[rows.astype(np.int64)])
    parts = frame_names.str.extract(PATTERN.pattern, flags=re.IGNORECASE)
    bad = parts[0].isna().to_numpy()
    if bad.any():
        raise ReIDError(
            f"mars: {int(bad.sum())} name(s) in {list_path} are not like 0001C1T0001F001.jpg, "
            f"e.g. {', '.join(frame_names[bad].iloc[:3])}."
        )
    name_pid = parts[0].map(_pid).to_numpy()
    name_cam = parts[1].astype(np.int64).to_numpy()
    wrong = (name_pid != tracks[track, 2]) | (name_cam != tracks[track, 3])
    if wrong.any():
        first = int(np.flatnonzero(wrong)[0])
        row = int(track[first])
        raise ReIDError(
            f"mars: row {row + 1} of tracks_{split}_info.mat says pid {tracks[row, 2]}, "
            f"camera {tracks[row, 3]}, but holds frame {frame_names.iloc[first]}."
        )
    return pd.DataFrame(
        {
            "path": [os.path.join(folder, n[:4], n) for n in frame_names],
            "pid": tracks[track, 2],
            "camid": tracks[track, 3] - 1,
            "tracklet": track,
            "frame": parts[3].astype(np.int64).to_numpy(),
        }
    )


def _pid(text):
    return -1 if text == "00-1" else int(text)


def _derived(folders):
    train = _read_split(folders["bbox_train"], "bbox_train", keep_unlabelled=False)
    test = _read_split(folders["bbox_test"], "bbox_test", keep_unlabelled=True)
    tracks = test.drop_duplicates("tracklet")
    tracks = tracks[tracks.pid > 0]
    cameras = tracks.groupby("pid").camid.nunique()
    tracks = tracks[tracks.pid.isin(cameras.index[cameras >= 2])]
    first = tracks.sort_values(["pid", "camid", "number"]).groupby(["pid", "camid"]).head(1)
    return {"train": train, "query": test[test.tracklet.isin(first.tracklet)], "gallery": test}


def _read_split(folder, sub, keep_unlabelled):
    records, ignored = [], []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if not os.path.isdir(path):
            ignored.append(entry)
            continue
        if re.fullmatch(r"\d{4}|00-1", entry) is None:
            raise ReIDError(
                f"mars: folder {entry!r} in {folder} is not a 4-digit person id "
                f"(expected {LAYOUT})."
            )

        def record(match, path, entry=entry):
            if match.group(1) != entry:
                raise ReIDError(f"mars: {path} is named for id {match.group(1)}, not {entry}.")
            pid = _pid(entry)
            if pid <= 0 and not keep_unlabelled:
                return None  # junk or distractors cannot be trained on
            return {
                "path": path,
                "pid": pid,
                "camid": int(match.group(2)) - 1,
                "number": int(match.group(3)),
                "frame": int(match.group(4)),
            }

        records += parse_folder(path, PATTERN, record, "mars", f"{sub}/{entry}")
    if ignored:
        logger.info("mars: ignored %d file(s) in %s: %s", len(ignored), folder, ignored[:5])
    table = pd.DataFrame(records, columns=["path", "pid", "camid", "number", "frame"])
    table = table.sort_values(["pid", "camid", "number", "frame"], kind="stable")
    table["tracklet"] = table.groupby(["pid", "camid", "number"], sort=True).ngroup()
    return table.reset_index(drop=True)
