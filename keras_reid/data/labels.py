"""Class labels: a run's person identities as class indices 0..C-1.

Person ids are a dataset's own numbers, so Market-1501's pid 1 and
DukeMTMC-reID's pid 1 are two people, and so are pid 1 of two folders read by
one loader. A :class:`ClassMap` gives every dataset-qualified identity
``(dataset, pid)`` of a run's training tables one class index, in one space
across all of them: what a classifier's logits and the softmax loss need
(C = ``num_classes``), and what lets a metric loss train
on batches that mix datasets without two people sharing a label.

The order is fixed by the tables alone: datasets in the order they first
appear in the tables as given, then pids ascending within each. A run writes
its map to its folder as ``classes.json``::

    {
      "num_classes": 3,
      "classes": [
        ["market1501", 2],
        ["market1501", 7],
        ["dukemtmc", 2]
      ]
    }

where entry ``i`` of ``classes`` is the ``[dataset, pid]`` of class ``i``.
``dataset`` is the tables' ``dataset`` column, the dataset's label: its name,
or ``market1501:A`` and ``market1501:B`` for two roots of one loader
(:func:`keras_reid.data.dataset.label_apart`).
"""

import json
import os

import numpy as np
import pandas as pd

from keras_reid.data.dataset import named_tables
from keras_reid.errors import ReIDError
from keras_reid.fileio import write_text

_NEEDS = "; class labels need each row's dataset and pid (tables as load_dataset gives them)"


def _identity(entry):
    """``(dataset, pid)`` from a classes.json entry, or None when it is not one."""
    if not isinstance(entry, (list, tuple)) or len(entry) != 2:
        return None
    dataset, pid = entry
    if not isinstance(dataset, str) or not dataset:
        return None
    if isinstance(pid, (bool, np.bool_)) or not isinstance(pid, (int, np.integer)) or pid < 0:
        return None
    return dataset, int(pid)


class ClassMap:
    """Dataset-qualified person identities ``(dataset, pid)`` ↔ class indices 0..C-1.

    Build it from a run's training tables with :meth:`from_tables`; label any
    table of the same datasets with :meth:`labels`; save it with :meth:`save`
    (``classes.json``, the format in the module docstring) and read it back with
    :meth:`load`.

    Args:
        identities: the ``(dataset, pid)`` pair of each class, in class order:
            ``identities[i]`` is class ``i``. Datasets are non-empty strings,
            pids integers >= 0, no pair twice.

    Attributes:
        identities: the list of ``(dataset, pid)`` tuples.
        num_classes: C, the number of classes.

    Example:
        >>> classes = ClassMap.from_tables([market.train, duke.train])
        >>> classes.num_classes  # 751 + 702
        1453
        >>> labels = classes.labels(duke.train)  # int32, 751..1452
        >>> classes.save(os.path.join(run_dir, "classes.json"))
    """

    def __init__(self, identities):
        pairs = []
        for index, entry in enumerate(identities):
            pair = _identity(entry)
            if pair is None:
                raise ReIDError(
                    f"class {index} is not a [dataset, pid] pair with a dataset name and a pid "
                    f">= 0. Received: {entry!r}"
                )
            pairs.append(pair)
        if not pairs:
            raise ReIDError("no classes: a class map needs at least one identity.")
        self._index = pd.MultiIndex.from_tuples(pairs, names=["dataset", "pid"])
        if not self._index.is_unique:
            twice = self._index[self._index.duplicated()][0]
            raise ReIDError(
                f"identity {twice[0]} pid {twice[1]} appears twice in the classes; each "
                f"(dataset, pid) is one class. Received: {list(twice)!r}"
            )
        self.identities = pairs

    @classmethod
    def from_tables(cls, tables):
        """The class map of the identities in ``tables``.

        Datasets come in the order they first appear (table by table, in the
        order given; a dict in its key order), pids ascending within each.

        Args:
            tables: a labelled table (columns dataset and pid), a list of them,
                or a dict name -> table.

        Raises:
            ReIDError: for a row with pid < 0 (unlabelled images have no class:
                leave target-domain tables out), no identities at all, or a
                table without a dataset or pid column.

        Example:
            >>> ClassMap.from_tables({"market1501": market.train, "duke": duke.train})
        """
        pids = {}
        for name, table in named_tables(tables, ("dataset", "pid"), _NEEDS, allow_empty=True):
            unlabelled = int((table["pid"] < 0).sum())
            if unlabelled:
                raise ReIDError(
                    f"{name}: {unlabelled} row(s) have pid < 0 (unlabelled), and unlabelled "
                    "images have no class; build the class map from labelled training tables "
                    "only."
                )
            for dataset, group in table.groupby("dataset", sort=False)["pid"]:
                pids.setdefault(str(dataset), set()).update(int(pid) for pid in group.unique())
        if not any(pids.values()):
            raise ReIDError("no identities in the tables: a class map needs labelled rows.")
        return cls([(dataset, pid) for dataset, found in pids.items() for pid in sorted(found)])

    @property
    def num_classes(self):
        return len(self.identities)

    def __len__(self):
        return len(self.identities)

    def __eq__(self, other):
        return isinstance(other, ClassMap) and self.identities == other.identities

    def __hash__(self):
        return hash(tuple(self.identities))

    def __repr__(self):
        datasets = list(dict.fromkeys(dataset for dataset, _ in self.identities))
        return f"ClassMap({self.num_classes} classes from {', '.join(datasets)})"

    def labels(self, table, unlabelled=False):
        """The class index of each row of ``table``, as a new int32 array.

        Args:
            table: a table with dataset and pid columns (it is not changed).
            unlabelled: give rows with pid < 0 the label -1 instead of refusing
                them (a target domain's images next to labelled ones). Default False.

        Returns:
            an int32 array ``[len(table)]`` of class indices (and -1s).

        Raises:
            ReIDError: a row whose ``(dataset, pid)`` is not in the map (naming
                the first one), or a row with pid < 0 unless ``unlabelled``.

        Example:
            >>> classes.labels(market.train)[:4]
            array([0, 0, 1, 1], dtype=int32)
        """
        named_tables(table, ("dataset", "pid"), _NEEDS, allow_empty=True)
        pids = table["pid"].to_numpy().astype(np.int64)
        negative = pids < 0
        if negative.any() and not unlabelled:
            first = int(np.flatnonzero(negative)[0])
            raise ReIDError(
                f"{int(negative.sum())} row(s) of the table have pid < 0 (unlabelled), e.g. row "
                f"{first} of {table['dataset'].iloc[first]}; pass unlabelled=True to keep them "
                "as label -1."
            )
        keys = pd.MultiIndex.from_arrays([table["dataset"].astype(str).to_numpy(), pids])
        labels = self._index.get_indexer(keys)
        unknown = (labels < 0) & ~negative
        if unknown.any():
            first = int(np.flatnonzero(unknown)[0])
            dataset, pid = str(table["dataset"].iloc[first]), int(pids[first])
            datasets = ", ".join(dict.fromkeys(dataset for dataset, _ in self.identities))
            raise ReIDError(
                f"{int(unknown.sum())} row(s) of the table have identities not in the class map "
                f"(e.g. {dataset} pid {pid}); the map's {self.num_classes} classes come from "
                f"{datasets}: label the tables it was built from (or build it from these). "
                f"Received: dataset={dataset!r}, pid={pid}"
            )
        labels[negative] = -1
        return labels.astype(np.int32)

    def with_labels(self, table, unlabelled=False):
        """A copy of ``table`` with a ``label`` column of class indices (see :meth:`labels`).

        Example:
            >>> classes.with_labels(market.train)[["pid", "label"]].head(2)
        """
        return table.assign(label=self.labels(table, unlabelled=unlabelled))

    def to_json(self):
        """The map as classes.json text (the format in the module docstring)."""
        rows = ",\n".join(f"    {json.dumps([dataset, pid])}" for dataset, pid in self.identities)
        return f'{{\n  "num_classes": {self.num_classes},\n  "classes": [\n{rows}\n  ]\n}}\n'

    @classmethod
    def from_json(cls, text, source="classes.json"):
        """The map from :meth:`to_json`'s text; ``source`` names it in errors.

        Example:
            >>> ClassMap.from_json('{"classes": [["market1501", 2], ["dukemtmc", 2]]}')
        """
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ReIDError(f"{source}: not JSON ({error}); write it with ClassMap.save.") from None
        if not isinstance(document, dict) or "classes" not in document:
            raise ReIDError(
                f"{source}: no 'classes' list; expected "
                '{"num_classes": C, "classes": [[dataset, pid], ...]}.'
            )
        entries = document["classes"]
        if not isinstance(entries, list):
            raise ReIDError(f"{source}: 'classes' is not a list of [dataset, pid] pairs.")
        try:
            classes = cls(entries)
        except ReIDError as error:
            raise ReIDError(f"{source}: {error}") from None
        stated = document.get("num_classes", classes.num_classes)
        if stated != classes.num_classes:
            raise ReIDError(
                f"{source}: num_classes={stated!r} but 'classes' lists {classes.num_classes}; "
                "the file was edited or damaged: write it again with ClassMap.save."
            )
        return classes

    def save(self, path):
        """Write :meth:`to_json` to ``path`` atomically (a run's ``classes.json``)."""
        write_text(path, self.to_json())

    @classmethod
    def load(cls, path):
        """The map saved at ``path`` by :meth:`save`.

        Raises:
            ReIDError: the file cannot be read or is not a class list.
        """
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise ReIDError(f"{path}: cannot read the class map ({reason}).") from None
        return cls.from_json(text, source=path)
