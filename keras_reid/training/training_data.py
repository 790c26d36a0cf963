"""The ``data`` section of a training config: which datasets a run reads.

:func:`load_training_data` turns the section into :class:`TrainingData`
(labelled sources, an optional validation set, an optional unlabelled
target); :func:`load_spec` reads one dataset entry, :func:`load_datasets` the
entries of a run together.

A dataset is its images, not its loader's name: two roots of one loader
(``market1501:/data/A``, ``market1501:/data/B``) are two datasets, labelled
apart (``market1501:A``, ``market1501:B``; see
:func:`keras_reid.data.dataset.label_apart`) in their tables, class maps,
groups and results, and one may be the target of the other. One dataset given
twice as a source, or a target that is also a source (the same images, by
any name or spelling of its root), is refused.
"""

import logging
import os
from dataclasses import dataclass

from keras_reid.data import load_dataset, parse_spec
from keras_reid.data.dataset import label_apart
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


def spec_parts(spec):
    """``(name, root or None, options)`` of ``"name[:root]"`` or ``{"name", "root", **options}``.

    ``$VARS`` and ``~`` are expanded in root.
    """
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
    return name, root, options


def load_spec(spec):
    """A dataset from ``"name[:root]"`` or ``{"name": ..., "root": ..., **options}``."""
    name, root, options = spec_parts(spec)
    return load_dataset(name, root, **options)


def load_datasets(sources, target=None, val=None, where="data.train"):
    """The datasets of a run, labelled apart: ``(sources, target, val)``.

    Loads each spec (as :func:`load_spec`), refuses one dataset twice among
    the sources and a target that is also a source (the same images, whatever
    the loader or the spelling of the root), and labels them with
    :func:`~keras_reid.data.dataset.label_apart`. The validation dataset may be
    a source or the target (it then shares its label). A target's person ids,
    where its train split has them, are not used by any recipe: each says so
    once with :func:`note_unlabelled_target`.

    Args:
        sources: a list of specs, the labelled sources.
        target: one spec or None, the unlabelled target.
        val: one spec or None, the validation dataset.
        where: the config key of the sources, for messages. Default "data.train".

    Example:
        >>> sources, target, _ = load_datasets(["market1501:/data/A"], "market1501:/data/C")
        >>> target.label
        'market1501:C'
    """
    entries = [(f"{where} entry {index}", spec) for index, spec in enumerate(sources, 1)]
    entries += [(key, spec) for key, spec in (("data.target", target), ("data.val", val)) if spec]
    parts = [spec_parts(spec) for _, spec in entries]
    loaded = [load_dataset(name, root, **options) for name, root, options in parts]
    count = len(sources)
    for second in range(count + bool(target)):
        for first in range(second):
            if not loaded[first].same_images(loaded[second]):
                continue
            images = sum(len(table) for table in loaded[first].splits().values())
            described = " ".join(filter(None, parts[first][:2]))
            if second < count:
                raise ReIDError(
                    f"{where} entries {first + 1} and {second + 1} are the same dataset (the "
                    f"same {images} images of {described}); give each dataset once."
                )
            raise ReIDError(
                f"data.target is also a source: {entries[first][0]} ({described}) has the same "
                f"{images} images; the target is the unlabelled dataset to adapt to, so give "
                "another one."
            )
    loaded = label_apart(loaded, [root for _, root, _ in parts])
    rest = iter(loaded[count:])
    target = next(rest) if target else None
    return loaded[:count], target, next(rest) if val else None


def note_unlabelled_target(target):
    """Say once that a labelled target's person ids are not used (every recipe trains without).

    Called by each recipe once its checks have passed and its run folder is
    written, so that a refused run stays one line.
    """
    labelled = 0 if target is None else int((target.train["pid"] >= 0).sum())
    if labelled:
        logger.info(
            "data.target %s: the person ids of its %d labelled train images are ignored "
            "(the target domain is trained without labels).",
            target.label,
            labelled,
        )


def load_training_data(train, val=None, target=None):
    """The ``data`` section: ``train`` a list of dataset specs, ``val`` and ``target`` one each.

    A spec is ``"name[:root]"`` (``$VARS`` and ``~`` expanded in root) or a
    mapping ``{name, root, <parser options>}``. ``target`` is the unlabelled
    target domain of ``cross_domain`` batches (DIEN): only its train images are
    used, and its person ids, if the dataset has them, are ignored (logged by
    :func:`note_unlabelled_target` when the run starts).
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
    sources, target, val = load_datasets(train, target, val)
    return TrainingData(sources, val, target)
