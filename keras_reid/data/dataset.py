"""The dataset contract: three tables with the same columns, and the registry.

A parser reads one on-disk layout and returns a :class:`ReIDDataset`; nothing
downstream looks at a file name again. Columns of every table:

=========  ======  ==============================================================
column     dtype   meaning
=========  ======  ==============================================================
path       str     absolute path of the image
pid        int     person id; -1 junk (Market-1501), 0 distractor (Market-1501)
camid      int     camera index, 0-based; -1 when the dataset has no cameras
dataset    str     the dataset's label (its name; see :func:`label_apart`), so tables
                   of several datasets can be mixed
tracklet   int     video datasets only: the tracklet the frame belongs to
frame      int     video datasets only: the frame number inside the tracklet
=========  ======  ==============================================================
"""

import dataclasses
import inspect
import json
import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from keras_reid.errors import ReIDError
from keras_reid.registry import Registry

logger = logging.getLogger("keras_reid.data")

COLUMNS = ["path", "pid", "camid", "dataset"]
VIDEO_COLUMNS = COLUMNS + ["tracklet", "frame"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

DATASETS = Registry("dataset")


def register_dataset(name):
    """Decorator registering a parser ``fn(root, **options) -> ReIDDataset`` as ``name``."""
    return DATASETS.register(name)


@dataclass
class ReIDDataset:
    """A re-ID dataset as three tables (see the module docstring for the columns).

    Attributes:
        name: the registry name ("market1501", ...).
        train: training images; pids are the dataset's own (not relabelled).
        query: query images.
        gallery: gallery images (Market-1501 keeps junk -1 and distractors 0).
        distractor_pids: pids that mark distractors rather than persons
            (Market-1501: 0); elsewhere pid 0 may be a real person (VIPeR, MSMT17).
        label: what tells the dataset apart from the others of a run, as its
            tables' ``dataset`` column holds it: ``name`` (the default), or
            ``name:FOLDER`` when a run reads two datasets of one loader
            (:func:`label_apart`).
    """

    name: str
    train: pd.DataFrame
    query: pd.DataFrame
    gallery: pd.DataFrame
    distractor_pids: tuple = ()
    label: str | None = None

    def __post_init__(self):
        if self.label is None:
            self.label = self.name

    def splits(self):
        return {"train": self.train, "query": self.query, "gallery": self.gallery}

    def labelled(self, label):
        """This dataset under ``label``: a copy whose tables' ``dataset`` column is ``label``."""
        if label == self.label:
            return self
        tables = {split: table.assign(dataset=label) for split, table in self.splits().items()}
        return dataclasses.replace(self, label=label, **tables)

    def same_images(self, other):
        """True when ``other`` lists the same image files as this dataset, split by split.

        Paths are compared with their folders resolved (symlinks, ``..``), so
        one folder reached by two spellings is one dataset, whichever loader
        read it; a dataset without images is no other dataset.
        """
        pairs = list(zip(self.splits().values(), other.splits().values(), strict=True))
        if any(len(mine) != len(theirs) for mine, theirs in pairs) or not any(
            len(mine) for mine, _ in pairs
        ):
            return False
        return all(_resolved(mine) == _resolved(theirs) for mine, theirs in pairs)

    def summary(self):
        """A DataFrame of ids, images and cameras per split.

        ``ids`` counts persons: junk (-1) and distractor pids are not persons.
        """
        rows = []
        for split, table in self.splits().items():
            persons = table.pid[(table.pid >= 0) & ~table.pid.isin(self.distractor_pids)]
            rows.append(
                {
                    "dataset": self.label,
                    "split": split,
                    "ids": int(persons.nunique()),
                    "images": len(table),
                    "cameras": int(table.loc[table.camid >= 0, "camid"].nunique()),
                }
            )
        return pd.DataFrame(rows)

    def check_query_matches(self):
        """Count queries whose pid has no gallery image; log them (not an error)."""
        if self.query.empty:
            return 0
        missing = ~self.query.pid.isin(set(self.gallery.pid))
        count = int(missing.sum())
        if count:
            logger.warning(
                "%s: %d of %d query images have no gallery image of the same id; "
                "evaluation skips and counts them.",
                self.name,
                count,
                len(self.query),
            )
        return count


def _resolved(table):
    """The set of a table's image paths, each folder resolved once (not each file)."""
    paths = table["path"].astype(str)
    folders = {folder: os.path.realpath(folder) for folder in paths.map(os.path.dirname).unique()}
    return {os.path.join(folders[os.path.dirname(p)], os.path.basename(p)) for p in paths}


def _folder(dataset):
    """The folder holding all of a dataset's images ("" without images)."""
    folders = {os.path.dirname(p) for table in dataset.splits().values() for p in table["path"]}
    return os.path.commonpath(sorted(folders)) if folders else ""


def label_apart(datasets, roots=None):
    """``datasets`` labelled so that two different datasets never share a label.

    A dataset keeps its name as label unless the list holds another dataset of
    the same loader name with other images (:meth:`ReIDDataset.same_images`);
    those are labelled by :func:`distinct_labels` from their roots (or,
    without a root, the folder holding their images): ``market1501:A``,
    ``market1501:B``. The same dataset given twice gets one label. Datasets
    whose names already differ keep them, so their class maps and groups are
    those of earlier versions.

    Args:
        datasets: a list of :class:`ReIDDataset`.
        roots: each dataset's root as given (None: unknown or the loader's
            default), in the same order. Default None (no roots).

    Returns:
        a list of datasets (the same objects where the label stays the name).

    Example:
        >>> a, b = load_dataset("market1501", "/data/A"), load_dataset("market1501", "/data/B")
        >>> [d.label for d in label_apart([a, b], ["/data/A", "/data/B"])]
        ['market1501:A', 'market1501:B']
    """
    roots = list(roots) if roots is not None else [None] * len(datasets)
    first = []  # index of the first dataset of the same name and images
    for i, dataset in enumerate(datasets):
        same = (
            j
            for j in range(i)
            if first[j] == j
            and datasets[j].name == dataset.name
            and dataset.same_images(datasets[j])
        )
        first.append(next(same, i))
    kept = [i for i in range(len(datasets)) if first[i] == i]
    names = [datasets[i].name for i in kept]
    shared = {name for name in names if names.count(name) > 1}
    folders = [
        (roots[i] or _folder(datasets[i])) if datasets[i].name in shared else "" for i in kept
    ]
    label_of = dict(zip(kept, distinct_labels(names, folders), strict=True))
    return [dataset.labelled(label_of[first[i]]) for i, dataset in enumerate(datasets)]


def distinct_labels(names, folders):
    """Labels of different datasets: each its name, unless two share it.

    Datasets sharing a name are labelled ``name:FOLDER``, FOLDER the shortest
    end of their folder's path that tells them apart (``/data/A`` and
    ``/data/B``: ``A`` and ``B``); datasets whose folders do not (one folder,
    other options) add ``#1``, ``#2``, ... in their order.

    Args:
        names: each dataset's loader name.
        folders: each dataset's folder ("" when unknown), in the same order.

    Example:
        >>> distinct_labels(["market1501", "market1501", "dukemtmc"], ["/d/A", "/d/B", "/d/C"])
        ['market1501:A', 'market1501:B', 'dukemtmc']
    """
    labels = list(names)
    for name in dict.fromkeys(names):
        members = [i for i, other in enumerate(names) if other == name]
        if len(members) < 2:
            continue
        tails = _short_tails(
            [os.path.normpath(os.path.abspath(folders[i])) if folders[i] else "" for i in members]
        )
        for i, tail in zip(members, tails, strict=True):
            ties = [j for j, other in zip(members, tails, strict=True) if other == tail]
            labels[i] = f"{name}:{tail}" if tail else name
            if len(ties) > 1:
                labels[i] += f"#{ties.index(i) + 1}"
    return labels


def spec_labels(specs):
    """The label of each dataset spec, without loading the datasets.

    A spec is ``"name[:root]"`` or a mapping ``{name, root, <options>}``. Specs
    of one name that differ in root or options are labelled apart by
    :func:`distinct_labels` (``market1501:A``, ``market1501:B``); the others,
    and one spec given twice, keep the name.

    Example:
        >>> spec_labels(["market1501:/d/A", "market1501:/d/B", "synth-b"])
        ['market1501:A', 'market1501:B', 'synth-b']
    """
    keys = []
    for spec in specs:
        if isinstance(spec, dict):
            name, root = str(spec.get("name")), spec.get("root")
            options = {k: v for k, v in spec.items() if k not in ("name", "root")}
        else:
            (name, root), options = parse_spec(spec), {}
        root = os.path.expandvars(os.path.expanduser(str(root))) if root else ""
        folder = os.path.normpath(os.path.abspath(root)) if root else ""
        keys.append((name, folder, json.dumps(options, sort_keys=True, default=str)))
    distinct = list(dict.fromkeys(keys))
    labels = distinct_labels([key[0] for key in distinct], [key[1] for key in distinct])
    label_of = dict(zip(distinct, labels, strict=True))
    return [label_of[key] for key in keys]


def _short_tails(folders):
    """The shortest path ends (last components) that tell different ``folders`` apart."""
    parts = [[part for part in folder.split(os.sep) if part] for folder in folders]
    different = len(set(folders))
    for count in range(1, max(map(len, parts), default=0) + 1):
        tails = ["/".join(folder[-count:]) for folder in parts]
        if len(set(tails)) == different:
            return tails
    return ["/".join(folder) for folder in parts]


def make_table(records, dataset, video=False):
    """A table with the standard columns and dtypes from dicts, tuples or columns.

    ``records`` is a list of dicts or tuples, or (for large video datasets,
    where a million per-row dicts would be slow) a DataFrame or a dict of columns.
    """
    columns = VIDEO_COLUMNS if video else COLUMNS
    if isinstance(records, (pd.DataFrame, dict)):
        table = pd.DataFrame({c: records[c] for c in columns if c != "dataset"})
        table = table.reindex(columns=columns)
    else:
        if records and not isinstance(records[0], dict):
            records = [dict(zip(columns, r, strict=False)) for r in records]
        table = pd.DataFrame.from_records(records, columns=columns)
    table["dataset"] = dataset
    table["path"] = table["path"].astype(str)
    for column in columns:
        if column not in ("path", "dataset"):
            table[column] = table[column].astype("int64")
    return table.reset_index(drop=True)


def named_tables(tables, columns=("path", "pid", "camid"), why="", allow_empty=False):
    """``[(name, table)]`` from a table, a list of tables or a dict name -> table, checked.

    An unnamed table is named after its ``dataset`` column (``table I`` without one).

    Args:
        tables: a DataFrame, a list or tuple of them, or a dict name -> DataFrame.
        columns: the columns every table needs.
        why: what needs them, appended to the message of a missing column.
        allow_empty: accept tables without rows. Default False.

    Raises:
        ReIDError: no table, something that is not a DataFrame, a missing
            column, or (unless ``allow_empty``) an empty table.
    """
    if isinstance(tables, pd.DataFrame):
        items = [(None, tables)]
    elif isinstance(tables, dict):
        items = list(tables.items())
    elif isinstance(tables, (list, tuple)):
        items = [(None, table) for table in tables]
    else:
        raise ReIDError(
            "tables must be a DataFrame, a list of DataFrames or a dict name -> DataFrame. "
            f"Received: tables of type {type(tables).__name__}"
        )
    if not items:
        raise ReIDError("no tables given: pass at least one training table.")
    named = []
    for index, (name, table) in enumerate(items):
        if not isinstance(table, pd.DataFrame):
            raise ReIDError(
                f"table {index} is a {type(table).__name__}, not a DataFrame with columns "
                "path, pid, camid, dataset."
            )
        if name is None:
            datasets = table["dataset"].unique() if "dataset" in table else []
            name = "+".join(map(str, datasets)) if len(datasets) else f"table {index}"
        missing = [c for c in columns if c not in table]
        if missing:
            raise ReIDError(f"{name}: missing column(s) {', '.join(missing)} in the table{why}.")
        if table.empty and not allow_empty:
            raise ReIDError(f"{name}: the table is empty.")
        named.append((str(name), table))
    return named


def require_dir(root, sub, dataset, layout):
    """``root/sub`` as an absolute path, or a ReIDError naming the expected layout."""
    root = os.path.abspath(os.path.expanduser(str(root)))
    if not os.path.isdir(root):
        raise ReIDError(f"{dataset}: no folder {root} (expected {layout}).")
    path = os.path.join(root, sub) if sub else root
    if not os.path.isdir(path):
        raise ReIDError(f"{dataset}: no folder {sub!r} under {root} (expected {layout}).")
    return path


def list_images(folder):
    """Sorted image file names (by extension) directly in ``folder``."""
    return sorted(
        f
        for f in os.listdir(folder)
        if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
    )


def parse_folder(folder, pattern, to_record, dataset, what):
    """Parse every image name in ``folder`` with a regex; report what does not parse.

    Args:
        folder: the folder to list.
        pattern: a compiled regex matched against each file name.
        to_record: ``fn(match, path) -> dict | None``; None skips the image on
            purpose (the caller documents why), which is counted and logged.
        dataset: dataset name for messages and the ``dataset`` column.
        what: the split's name for messages ("bounding_box_train").

    Raises:
        ReIDError: when some file names do not match ``pattern``: names how
            many and the first few, since a wrong folder is the usual cause.
    """
    records, bad, skipped = [], [], 0
    for name in list_images(folder):
        match = pattern.fullmatch(name)
        if match is None:
            bad.append(name)
            continue
        record = to_record(match, os.path.join(folder, name))
        if record is None:
            skipped += 1
            continue
        records.append(record)
    if bad:
        raise ReIDError(
            f"{dataset}: {len(bad)} file name(s) in {folder} do not match the "
            f"{dataset} pattern {pattern.pattern!r}, e.g. {', '.join(bad[:3])}; "
            "remove them or point the loader at the right folder."
        )
    if skipped:
        logger.info(
            "%s/%s: skipped %d image(s) on purpose (see the parser)", dataset, what, skipped
        )
    return records


def half_split_ids(pids, split, dataset, n_splits=10, seed=2018):
    """Train and test ids of split ``split`` of ``n_splits`` fixed random halvings.

    The sorted unique ids are permuted ``n_splits`` times by one
    ``np.random.default_rng(seed)``; split ``k`` takes the ``k``-th permutation,
    its first ``len // 2`` ids for training and the rest for testing. The
    splits depend only on the ids and the seed, so every user gets the same.

    Args:
        pids: the ids to split (repeats are fine).
        split: which split, ``0 <= split < n_splits``.
        dataset: the dataset's name, for messages.
        n_splits: how many splits the dataset has (default 10).
        seed: the generator's seed (default 2018).

    Returns:
        (train_ids, test_ids): two sorted lists of ints.
    """
    if not isinstance(split, (int, np.integer)) or not 0 <= split < n_splits:
        raise ReIDError(f"{dataset}: split must be in 0..{n_splits - 1}. Received: split={split!r}")
    ids = np.array(sorted({int(p) for p in pids}))
    rng = np.random.default_rng(seed)
    order = [rng.permutation(len(ids)) for _ in range(split + 1)][split]
    half = len(ids) // 2
    return sorted(ids[order[:half]].tolist()), sorted(ids[order[half:]].tolist())


def read_mat(path, dataset, keys):
    """Variables ``keys`` of a MATLAB v5 ``.mat`` file, or a ReIDError naming what is missing."""
    if not os.path.isfile(path):
        raise ReIDError(f"{dataset}: no file {path} (expected the official .mat file).")
    from scipy.io import loadmat

    try:
        content = loadmat(path)
    except (ValueError, OSError, NotImplementedError) as error:
        raise ReIDError(f"{dataset}: cannot read {path} as a MATLAB v5 file ({error}).") from None
    missing = [k for k in keys if k not in content]
    if missing:
        found = sorted(k for k in content if not k.startswith("__"))
        raise ReIDError(
            f"{dataset}: {path} has no variable(s) {', '.join(missing)}; "
            f"found: {', '.join(found) or 'none'}."
        )
    return {k: content[k] for k in keys}


def load_dataset(name, root=None, **options):
    """Load a registered dataset as a :class:`ReIDDataset`.

    Args:
        name: a registry name, see ``keras_reid.data.DATASETS.names()``.
        root: the dataset's folder on disk (as extracted from the official archive).
        **options: the parser's own options (e.g. ``cuhk03``'s ``variant``).

    Example:
        >>> market = load_dataset("market1501", "/data/Market-1501-v15.09.15")
        >>> market.train.head()
    """
    parser = DATASETS.check(name, options, exclude=("root",))
    params = inspect.signature(parser).parameters
    if root is None and params["root"].default is inspect.Parameter.empty:
        raise ReIDError(f"{name}: needs the dataset's folder (root=PATH or NAME:PATH).")
    dataset = parser(root, **options) if root is not None else parser(**options)
    dataset.check_query_matches()
    return dataset


def parse_spec(spec):
    """Split a command-line dataset spec ``name[:root]`` into (name, root or None)."""
    name, _, root = str(spec).partition(":")
    return name, (root or None)
