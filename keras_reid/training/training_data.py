"""The ``data`` section of a training config: which datasets a run reads.

:func:`load_training_data` turns the section into :class:`TrainingData`
(labelled sources, an optional validation set, an optional unlabelled
target); :func:`load_spec` reads one dataset entry.
"""

import logging
import os
from dataclasses import dataclass

from keras_reid.data import load_dataset, parse_spec
from keras_reid.errors import ReIDError

logger = logging.getLogger("keras_reid.training")


@dataclass
class TrainingData:
    """Labelled source datasets, an optional validation dataset and an unlabelled target."""

    sources: list
    validation: object = None
    target: object = None

    @property
    def tables(self):
        return [dataset.train for dataset in self.sources]


def load_spec(spec):
    """A dataset from ``"name[:root]"`` or ``{"name": ..., "root": ..., **options}``."""
    if isinstance(spec, dict):
        spec = dict(spec)
        if "name" not in spec:
            raise ReIDError(f"data: a dataset entry needs a 'name'; got {spec}.")
        name, root = spec.pop("name"), spec.pop("root", None)
        options = spec
    else:
        (name, root), options = parse_spec(spec), {}
    if root is not None:
        root = os.path.expandvars(os.path.expanduser(str(root)))
        if "$" in root:
            raise ReIDError(
                f"data: {name} root {root!r} names an environment variable that is not set; "
                "export it (e.g. REID_DATA=/data) or write the path in the config."
            )
    return load_dataset(name, root, **options)


def load_training_data(train, val=None, target=None):
    """The ``data`` section: ``train`` a list of dataset specs, ``val`` and ``target`` one each.

    A spec is ``"name[:root]"`` (``$VARS`` and ``~`` expanded in root) or a
    mapping ``{name, root, <parser options>}``. ``target`` is the unlabelled
    target domain of ``cross_domain`` batches (DIEN): only its train images are
    used, and its person ids, if the dataset has them, are ignored (logged).
    """
    if isinstance(train, (str, dict)):
        train = [train]
    if not train:
        raise ReIDError("data.train is empty; give at least one dataset, e.g. synth-a.")
    if target is not None and not isinstance(target, (str, dict)):
        raise ReIDError(
            f"data.target must be one dataset spec (e.g. synth-b), not {target!r}: DIEN adapts "
            "to one target domain."
        )
    data = TrainingData(
        [load_spec(spec) for spec in train],
        load_spec(val) if val else None,
        load_spec(target) if target else None,
    )
    if data.target is not None:
        labelled = int((data.target.train["pid"] >= 0).sum())
        if labelled:
            logger.info(
                "data.target %s: the person ids of its %d labelled train images are ignored "
                "(the target domain is trained without labels).",
                data.target.name,
                labelled,
            )
    return data
