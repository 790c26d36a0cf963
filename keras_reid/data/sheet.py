"""Contact sheets: a few identities of each dataset, seen by every camera.

A quick look at a domain tells more than its summary table: how the cameras
differ, whether an identity is recognisable across them, what a crop looks
like. ``keras-reid demo`` and ``keras-reid datasets --sheet FILE`` write one.
"""

import os

import cv2
import numpy as np
import pandas as pd

from keras_reid.checks import is_int
from keras_reid.data.dataset import ReIDDataset
from keras_reid.errors import ReIDError
from keras_reid.fileio import atomic_output

# The grid, in pixels (see contact_sheet for the resulting image size).
LABEL_WIDTH = 72
HEADER_HEIGHT = 16
PAD = 2

_BACKGROUND = 255
_EMPTY = 215
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _named_tables(tables):
    """(name, table) pairs from a table, a ReIDDataset, or a list or dict of them."""
    if isinstance(tables, (pd.DataFrame, ReIDDataset)):
        tables = [tables]
    items = tables.items() if isinstance(tables, dict) else [(None, t) for t in tables]
    named = []
    for name, table in items:
        if isinstance(table, ReIDDataset):
            name, table = name or table.name, table.train
        if not isinstance(table, pd.DataFrame):
            raise ReIDError(
                "contact_sheet: tables must be DataFrames or ReIDDatasets (a list or a dict "
                f"name -> table). Received: {type(table).__name__}"
            )
        missing = {"path", "pid", "camid"} - set(table.columns)
        if missing:
            raise ReIDError(
                f"contact_sheet: table {name or ''} lacks column(s) {', '.join(sorted(missing))}"
                " (expected the dataset table columns path, pid, camid, dataset)."
            )
        if name is None:
            name = str(table["dataset"].iloc[0]) if "dataset" in table and len(table) else "?"
        if not (table.pid > 0).any():
            raise ReIDError(f"contact_sheet: table {name} has no identity (pid > 0) to show.")
        named.append((str(name), table))
    if not named:
        raise ReIDError("contact_sheet: no table given.")
    return named


def _choose(table, ids, rng):
    """The ``ids`` identities seen by the most cameras (ties drawn at random), by pid."""
    people = table[table.pid > 0]
    cameras = people.groupby("pid").camid.nunique()
    shuffled = cameras.iloc[rng.permutation(len(cameras))]
    chosen = shuffled.sort_values(ascending=False, kind="stable").index[:ids]
    return sorted(int(p) for p in chosen)


def _text(image, text, x, y, width, height, scale=0.4):
    # Shrink the font until the label fits its cell; below 0.25 it is unreadable anyway.
    while True:
        (w, h), _ = cv2.getTextSize(text, _FONT, scale, 1)
        if w <= width - 4 or scale <= 0.25:
            break
        scale -= 0.05
    baseline = y + (height + h) // 2
    cv2.putText(image, text, (x + 2, baseline), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _thumbnail(path, thumb):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ReIDError(f"contact_sheet: cannot read image {path} (missing or not an image).")
    return cv2.resize(image, (thumb[1], thumb[0]), interpolation=cv2.INTER_AREA)


def contact_sheet(tables, out_path, ids=4, per_camera=1, thumb=(64, 32), seed=0):
    """Write a PNG showing, per dataset, a few identities (rows) across every camera (columns).

    Each dataset is a block: a header with its name and the camera labels
    (the table's 0-based ``camid``; "no camera" for -1), then one row per
    identity labelled with its pid, holding ``per_camera`` thumbnails for
    each camera (grey where the identity has no image there). The identities
    shown are those seen by the most cameras. The image is

        width  = LABEL_WIDTH + C * (per_camera * (W + PAD) + PAD)
        height = sum over blocks of (HEADER_HEIGHT + R * (H + PAD)) + PAD

    pixels, with (H, W) = ``thumb``, C the largest number of cameras of the
    tables and R the rows of a block (``ids``, or fewer if a table has fewer).

    Args:
        tables: a table, a list of tables (named by their ``dataset`` column),
            a dict name -> table, or ReIDDatasets (their train table).
        out_path: the PNG to write (atomically: a temporary file, then renamed).
        ids: identities per dataset. Default 4.
        per_camera: thumbnails per identity and camera. Default 1.
        thumb: (height, width) of a thumbnail. Default (64, 32).
        seed: draws the identities among ties and the images shown. Default 0.

    Returns:
        The absolute path of the PNG.

    Example:
        >>> source, target = load_dataset("synth-a"), load_dataset("synth-b")
        >>> contact_sheet({"synth-a": source.train, "synth-b": target.train}, "domains.png")
    """
    if not is_int(ids, minimum=1):
        raise ReIDError(f"contact_sheet: ids must be an integer >= 1. Received: ids={ids!r}")
    if not is_int(per_camera, minimum=1):
        raise ReIDError(
            "contact_sheet: per_camera must be an integer >= 1. "
            f"Received: per_camera={per_camera!r}"
        )
    try:
        th, tw = (int(v) for v in thumb)
    except (TypeError, ValueError):
        raise ReIDError(
            f"contact_sheet: thumb must be (height, width). Received: thumb={thumb!r}"
        ) from None
    if th < 8 or tw < 8:
        raise ReIDError(f"contact_sheet: thumb must be at least 8x8. Received: thumb={thumb!r}")

    rng = np.random.default_rng(seed)
    blocks = []
    for name, table in _named_tables(tables):
        cameras = sorted(int(c) for c in table.camid.unique())
        blocks.append((name, table, cameras, _choose(table, ids, rng)))
    column = per_camera * (tw + PAD) + PAD
    width = LABEL_WIDTH + max(len(b[2]) for b in blocks) * column
    height = sum(HEADER_HEIGHT + len(b[3]) * (th + PAD) for b in blocks) + PAD
    sheet = np.full((height, width, 3), _BACKGROUND, np.uint8)

    top = 0
    for name, table, cameras, pids in blocks:
        _text(sheet, name, 0, top, LABEL_WIDTH, HEADER_HEIGHT)
        for c, camid in enumerate(cameras):
            label = "no camera" if camid < 0 else f"cam {camid}"
            _text(sheet, label, LABEL_WIDTH + c * column, top, column, HEADER_HEIGHT)
        y = top + HEADER_HEIGHT
        for pid in pids:
            _text(sheet, f"pid {pid}", 0, y, LABEL_WIDTH, th)
            rows = table[table.pid == pid]
            for c, camid in enumerate(cameras):
                paths = rows.loc[rows.camid == camid, "path"].tolist()
                picked = [paths[i] for i in sorted(rng.permutation(len(paths))[:per_camera])]
                for k in range(per_camera):
                    x = LABEL_WIDTH + c * column + PAD + k * (tw + PAD)
                    cell = _thumbnail(picked[k], (th, tw)) if k < len(picked) else _EMPTY
                    sheet[y : y + th, x : x + tw] = cell
            y += th + PAD
        top = y

    return _write_png(sheet, out_path)


def _write_png(image, out_path):
    out_path = os.path.abspath(os.path.expanduser(str(out_path)))
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ReIDError(f"contact_sheet: could not encode {out_path} as PNG.")
    with atomic_output(out_path) as temp, open(temp, "wb") as file:
        file.write(data.tobytes())
    return out_path
