"""Datasets (parsers + registry), the SynthReID generator and tf.data pipelines."""

# Each parser module registers itself with @register_dataset; importing them
# here, explicitly, is what makes the registry complete.
from keras_reid.data import (  # noqa: F401
    cuhk03,
    cuhk_sysu,
    dukemtmc,
    folder,
    market1501,
    mars,
    msmt17,
    viper,
    ward,
)
from keras_reid.data.dataset import (
    COLUMNS,
    DATASETS,
    VIDEO_COLUMNS,
    ReIDDataset,
    load_dataset,
    make_table,
    parse_spec,
    register_dataset,
)

__all__ = [
    "COLUMNS",
    "DATASETS",
    "VIDEO_COLUMNS",
    "ReIDDataset",
    "load_dataset",
    "make_table",
    "parse_spec",
    "register_dataset",
]
