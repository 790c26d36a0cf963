"""EmbAE's configuration: the config sections, their option classes, and checks.

See :mod:`keras_reid.training.embae` for the recipe these configure.
"""

import logging
from dataclasses import dataclass

from keras_reid.checks import is_int
from keras_reid.config import call_section
from keras_reid.errors import ReIDError
from keras_reid.training.training_data import load_datasets

logger = logging.getLogger("keras_reid.training")

SECTIONS = (
    "data",
    "embedding",
    "autoencoder",
    "cache",
    "pretrain",
    "finetune",
    "finetune_nui",
    "variants",
    "train",
)


VARIANTS = ("all", "fix_nui", "new_nui", "dataset_nui", "cam_nui", "bn_adapt")
# How each autoencoder variant holds θ_nui, i.e. which pre-trained autoencoder it
# starts from. "bn_adapt", the control, has no autoencoder: the stage-1 head
# with its BatchNorm statistics re-estimated on the target.
VARIANT_NUI = {
    "all": "common",
    "fix_nui": "common",
    "new_nui": "common",
    "dataset_nui": "dataset",
    "cam_nui": "camera",
}
NUI_MODES = ("common", "dataset", "camera")


@dataclass
class StageOptions:
    """One autoencoder stage's optimisation (Adam on the reconstruction MSE).

    Attributes:
        epochs: passes over the cached images (each image once per epoch, as
            itself or its flip at random).
        learning_rate: Adam's constant learning rate.
        batch_size: images per step. Default 128.
    """

    epochs: int
    learning_rate: float
    batch_size: int = 128

    def __post_init__(self):
        self.learning_rate = float(self.learning_rate)
        if not is_int(self.epochs, minimum=0):
            raise ReIDError(f"stage epochs must be an integer >= 0. Received: {self.epochs!r}")
        if self.learning_rate <= 0:
            raise ReIDError(f"learning_rate must be > 0. Received: {self.learning_rate!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ReIDError(f"batch_size must be an integer >= 2. Received: {self.batch_size!r}")


@dataclass
class CacheOptions:
    """The ``cache`` section: where trunk features are kept.

    Attributes:
        dir: the cache folder; None: ``out/cache``. A folder shared between
            runs is safe: a file from another trunk, weights or image size is
            rebuilt, never reused.
        batch_size: images per trunk forward pass while extracting. Default 128.
    """

    dir: str | None = None
    batch_size: int = 128


@dataclass
class RunOptions:
    """The ``train`` section.

    Attributes:
        seed: seeds Keras, NumPy, TensorFlow and the batch order of every stage. Default 0.
        verbose: Keras' progress output (1 bars, 2 a line per epoch, 0 silent). Default 1.
        export_inference: also save each variant as one images -> {embedding,
            nuisance} model (inference.keras). Default True.
        ten_views: also score every row with Hermans et al.'s ten test-time
            views (five crops and their mirrors; results_ten_views.*), beside the
            image and its mirror (results.*). Default True.
    """

    seed: int = 0
    verbose: int = 1
    export_inference: bool = True
    ten_views: bool = True


@dataclass
class EmbAEData:
    """The labelled source datasets and the unlabelled target dataset."""

    sources: list
    target: object


def load_embae_data(sources, target):
    """The ``data`` section: ``sources`` (one spec or a list), ``target`` (one spec).

    A spec is ``"name[:root]"`` or ``{name, root, <parser options>}``, as in
    :func:`keras_reid.training.training_data.load_training_data`. Two roots of
    one loader are two datasets (:func:`~keras_reid.training.training_data.load_datasets`):
    each has its own θ_nui group; one dataset twice, or a target that is a
    source, is refused.

    Example:
        >>> data = load_embae_data(["dukemtmc:/data/DukeMTMC-reID"], "market1501:/data/market")
    """
    if isinstance(sources, (str, dict)):
        sources = [sources]
    if not sources:
        raise ReIDError("data.sources is empty; give at least one labelled dataset, e.g. synth-a.")
    if not target:
        raise ReIDError("data.target is missing; give the unlabelled target dataset, e.g. synth-b.")
    loaded, target, _ = load_datasets(sources, target, where="data.sources")
    return EmbAEData(loaded, target)


def check_variants(variants):
    if variants is None:
        return list(VARIANTS)
    if isinstance(variants, str):
        variants = [variants]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ReIDError(
            f"unknown variant(s) {', '.join(map(str, unknown)) or '(none given)'}; expected "
            f"a list of: {', '.join(VARIANTS)}."
        )
    return list(dict.fromkeys(variants))


def runnable_variants(variants, data):
    """Drop cam_nui, with a warning, when a dataset lacks camera ids and others can run.

    cam_nui picks θ_nui by (dataset, camera), so every train image of the
    sources and the target needs a camera id; the other variants need none.
    """
    if "cam_nui" not in variants:
        return variants
    missing = [
        (dataset.label, int((dataset.train["camid"] < 0).sum()), len(dataset.train))
        for dataset in [*data.sources, data.target]
        if (dataset.train["camid"] < 0).any()
    ]
    if not missing:
        return variants
    reason = "cam_nui needs camera ids, but " + "; ".join(
        f"{count} of the {total} {name} train images have camid -1"
        for name, count, total in missing
    )
    if variants == ["cam_nui"]:
        raise ReIDError(f"{reason}; run fix_nui, new_nui or dataset_nui instead.")
    # Several variants asked for: the others do not need cameras, so a long
    # run still delivers them rather than failing on one row.
    kept = [v for v in variants if v != "cam_nui"]
    logger.warning("skipping %s; running %s.", reason, ", ".join(kept))
    return kept


def stage_options(config, section):
    """A :class:`StageOptions` section; the paper gives no epochs or rates, so both are required."""
    options = config.get(section)
    if not isinstance(options, dict):
        raise ReIDError(
            f"config: section {section} is missing; give its epochs and learning_rate "
            "(see train_scripts/configs/embae_synth.yaml for chosen values and why)."
        )
    try:
        return call_section(StageOptions, config, section)
    except TypeError as error:
        raise ReIDError(f"config: {section}: {error}; give epochs and learning_rate.") from None


def autoencoder_options(config):
    """The ``autoencoder`` section: the sizes that do not come from the stage-1 model."""
    options = dict(config.get("autoencoder") or {})
    valid = ("nui_dim", "decoder_hidden")
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ReIDError(
            f"config: unknown key(s) {', '.join(f'autoencoder.{k}' for k in unknown)}; valid keys "
            f"of autoencoder: {', '.join(valid)} (feature_dim, embedding_dim and hidden come "
            "from the stage-1 model)."
        )
    return options
