"""Your own data: identity folders or CSV files.

Three accepted layouts, tried in this order:

1. ``csv=PATH`` (no root): one CSV file with a header line and columns
   ``path,pid[,camid][,split]``; ``split`` is train, query or gallery
   (without the column every row trains).
2. ``ROOT/train.csv`` [+ ``ROOT/query.csv`` and ``ROOT/gallery.csv``]: one
   CSV per split with columns ``path,pid[,camid]``.
3. Identity folders, one per person, any folder name::

       ROOT/train/alice/0001.jpg
       ROOT/query/bob/img_c1_03.jpg
       ROOT/gallery/bob/img_c2_17.jpg

In CSV files, relative paths are relative to the CSV's folder, pid is an
integer and camid a 0-based integer (an empty cell or no column: -1). In
identity folders, the same folder name is the same pid in every split: when
every name is an integer (``0002``, ``-1``) that integer is the pid,
otherwise the sorted names are numbered from 0. A camera is read from file
names containing ``_c{N}`` (N from 1: camid N - 1); either every image names
its camera or none does.

Query and gallery are optional, together: with train only, they are empty
tables (training-only data).

Without cameras (camid -1), the evaluation cannot apply the usual rule that
discards gallery images of the query's id from the query's own camera: it
only discards the query image itself (the same path), so a gallery holding
near-duplicates of a query from the same camera makes the scores optimistic.
"""

import io
import os
import re
from csv import DictReader

from keras_reid.data.dataset import (
    ReIDDataset,
    list_images,
    make_table,
    register_dataset,
    require_dir,
)
from keras_reid.errors import ReIDError
from keras_reid.fileio import read_text

SPLITS = ("train", "query", "gallery")
CAMERA = re.compile(r"_c(\d+)")
LAYOUT = "ROOT/train/{identity}/*.jpg [+ query/, gallery/], or ROOT/train.csv [+ query.csv, ...]"


@register_dataset("folder")
def folder(root=None, csv=None):
    """A dataset of your own, from identity folders or CSV files (see the module docstring).

    Args:
        root: a folder with ``train/`` [``query/``, ``gallery/``] identity
            folders, or with ``train.csv`` [``query.csv``, ``gallery.csv``].
        csv: instead of root, one CSV file with a ``split`` column.

    Example:
        >>> mine = load_dataset("folder", "/data/shop_cameras")
        >>> mine = load_dataset("folder", csv="/data/shop_cameras/all.csv")
    """
    if (root is None) == (csv is None):
        raise ReIDError(f"folder: give either root or csv=PATH. Received: {root=}, {csv=}")
    if csv is not None:
        tables = {split: [] for split in SPLITS}
        for record in _read_csv(os.path.abspath(os.path.expanduser(str(csv))), split=None):
            tables[record["split"]].append(record)
    else:
        root = require_dir(root, "", "folder", LAYOUT)
        if os.path.isfile(os.path.join(root, "train.csv")):
            tables = {
                split: _read_csv(path, split) if path else []
                for split, path in _split_sources(root, "{}.csv", os.path.isfile).items()
            }
        else:
            tables = _read_identity_folders(root)
    return ReIDDataset(
        name="folder", **{split: make_table(tables[split], "folder") for split in SPLITS}
    )


def _split_sources(root, template, exists):
    """``{split: path or None}``; train required, query and gallery both or neither."""
    sources = {}
    for split in SPLITS:
        path = os.path.join(root, template.format(split))
        sources[split] = path if exists(path) else None
    if sources["train"] is None:
        raise ReIDError(f"folder: no {template.format('train')!r} under {root} ({LAYOUT}).")
    if (sources["query"] is None) != (sources["gallery"] is None):
        have, lack = ("query", "gallery") if sources["query"] else ("gallery", "query")
        raise ReIDError(
            f"folder: {root} has {template.format(have)!r} but no {template.format(lack)!r}; "
            "give both or neither (training-only data)."
        )
    return sources


def _read_csv(path, split):
    """Records (with their split) of one CSV; ``split=None`` reads it from a split column."""
    if not os.path.isfile(path):
        raise ReIDError(f"folder: no CSV file {path}.")
    allowed = {"path", "pid", "camid"} | ({"split"} if split is None else set())
    base = os.path.dirname(path)
    records = []
    with io.StringIO(read_text(path, "folder: CSV"), newline="") as handle:
        reader = DictReader(handle)
        columns = [column.strip() for column in reader.fieldnames or []]
        reader.fieldnames = columns
        if not {"path", "pid"} <= set(columns) or not set(columns) <= allowed:
            raise ReIDError(
                f"folder: {path} line 1 has columns {','.join(columns) or 'none'}; "
                f"expected path,pid[,camid]{'[,split]' if split is None else ''}."
            )
        for row in reader:
            line = reader.line_num
            if None in row or None in row.values():
                raise ReIDError(
                    f"folder: {path} line {line} has not the {len(columns)} fields of the header."
                )
            try:
                record = {
                    "path": os.path.join(base, os.path.expanduser(row["path"].strip())),
                    "pid": int(row["pid"]),
                    "camid": int(row.get("camid", "").strip() or -1),
                    "split": row.get("split", "train").strip() if split is None else split,
                }
            except ValueError:
                raise ReIDError(
                    f"folder: {path} line {line}: pid and camid must be integers. "
                    f"Received: {dict(row)}"
                ) from None
            if record["split"] not in SPLITS:
                raise ReIDError(
                    f"folder: {path} line {line}: split must be train, query or gallery. "
                    f"Received: {record['split']!r}"
                )
            if not row["path"].strip() or not os.path.isfile(record["path"]):
                raise ReIDError(f"folder: {path} line {line}: no image {record['path']}.")
            records.append(record)
    return records


def _read_identity_folders(root):
    sources = _split_sources(root, "{}", os.path.isdir)
    found = {}  # split -> [(identity, path)]
    for split, folder in sources.items():
        if folder is None:
            continue
        loose = list_images(folder)
        if loose:
            raise ReIDError(
                f"folder: {folder} holds images outside identity folders, e.g. {loose[0]}; "
                f"put each person's images in a folder of their own ({LAYOUT})."
            )
        found[split] = [
            (identity, os.path.join(folder, identity, name))
            for identity in sorted(os.listdir(folder))
            if os.path.isdir(os.path.join(folder, identity))
            for name in list_images(os.path.join(folder, identity))
        ]
    identities = sorted({identity for pairs in found.values() for identity, _ in pairs})
    if all(re.fullmatch(r"-?\d+", name) for name in identities):
        pids = {name: int(name) for name in identities}
    else:
        pids = {name: index for index, name in enumerate(identities)}
    cameras = {
        path: CAMERA.search(os.path.basename(path)) for pairs in found.values() for _, path in pairs
    }
    named = [path for path, match in cameras.items() if match]
    if named and len(named) != len(cameras):
        unnamed = [path for path, match in cameras.items() if not match]
        raise ReIDError(
            f"folder: {len(named)} image(s) name a camera (_c1, _c2, ...) and {len(unnamed)} "
            f"do not, e.g. {unnamed[0]}; name the camera in all or none."
        )
    if any(int(match.group(1)) < 1 for match in cameras.values() if match):
        raise ReIDError("folder: cameras in file names are numbered from 1 (_c1, _c2, ...).")
    return {
        split: [
            {
                "path": path,
                "pid": pids[identity],
                "camid": int(cameras[path].group(1)) - 1 if cameras[path] else -1,
            }
            for identity, path in found.get(split, [])
        ]
        for split in SPLITS
    }
