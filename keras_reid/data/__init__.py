"""Datasets (parsers + registry), the SynthReID generator and tf.data pipelines."""

# Each parser module registers itself with @register_dataset; importing them
# here, explicitly, is what makes the registry complete.
from keras_reid.data import (  # noqa: F401
    cuhk03,
    cuhk03_folders,
    cuhk_sysu,
    dukemtmc,
    folder,
    market1501,
    mars,
    msmt17,
    synthreid,
    viper,
    ward,
)
from keras_reid.data.augment import Augment, resolve_augment
from keras_reid.data.dataset import (
    COLUMNS,
    DATASETS,
    VIDEO_COLUMNS,
    ReIDDataset,
    label_apart,
    load_dataset,
    make_table,
    parse_spec,
    register_dataset,
)
from keras_reid.data.images import find_unreadable, load_image
from keras_reid.data.labels import ClassMap
from keras_reid.data.pipeline import inference_batches, steps_per_epoch
from keras_reid.data.samplers import (
    cross_domain_batches,
    mixed_batches,
    pk_batches,
    unlabeled_batches,
)
from keras_reid.data.sheet import contact_sheet

__all__ = [
    "Augment",
    "ClassMap",
    "contact_sheet",
    "cross_domain_batches",
    "find_unreadable",
    "inference_batches",
    "load_image",
    "mixed_batches",
    "pk_batches",
    "resolve_augment",
    "steps_per_epoch",
    "unlabeled_batches",
    "COLUMNS",
    "DATASETS",
    "VIDEO_COLUMNS",
    "ReIDDataset",
    "label_apart",
    "load_dataset",
    "make_table",
    "parse_spec",
    "register_dataset",
]
