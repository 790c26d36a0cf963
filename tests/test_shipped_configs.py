"""Every shipped config of the shared training path names things that exist, with valid keys.

A typo in train_scripts/configs (an unknown loss argument, a schedule key,
a model switch) would otherwise show only when a user starts a GPU run. Each
section is checked against the function it maps onto, without building the
model or reading the data (the paper datasets are not here).
"""

import glob
import inspect
import os

import pytest

from keras_reid.config import check_sections, load_config
from keras_reid.data.dataset import DATASETS, parse_spec
from keras_reid.data.samplers import cross_domain_batches, mixed_batches, pk_batches
from keras_reid.losses import get_loss
from keras_reid.models import MODELS
from keras_reid.training.embedding import embedding_config
from keras_reid.training.optimizers import OPTIMIZERS
from keras_reid.training.pul import SECTIONS as PUL_SECTIONS
from keras_reid.training.pul import PULOptions, PULRunOptions, check_finetune
from keras_reid.training.recipe import BATCH_KINDS, SECTIONS
from keras_reid.training.runner import TrainOptions
from keras_reid.training.schedules import build_schedule
from keras_reid.training.stages import stage_configs

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "train_scripts", "configs")
# The common sections of a family (its base, a transfer's data), not runs: no losses.
COMMON = {
    "msml_base.yaml",
    "msml_synth_base.yaml",
    "msml_cuhk03_base.yaml",
    "sal_base.yaml",
    "sal_synth_base.yaml",
    "sal_cuhk03_base.yaml",
    "dien_base.yaml",
    "dien_synth_base.yaml",
    "dien_duke_market.yaml",
    "dien_market_duke.yaml",
    "dien_synth_ab.yaml",
    "dien_synth_ba.yaml",
    "dien_cuhk03.yaml",
}
SHARED_PATH = sorted(
    path
    for prefix in ("embedding", "msml", "sal", "dien")
    for path in glob.glob(os.path.join(CONFIGS, f"{prefix}_*.yaml"))
    if os.path.basename(path) not in COMMON
)


def keywords(fn):
    return set(inspect.signature(fn).parameters)


def check_stage(config):
    check_sections(config, SECTIONS)
    data = config["data"]
    specs = data["train"] + [data[key] for key in ("val", "target") if data.get(key)]
    for spec in specs:
        name = spec["name"] if isinstance(spec, dict) else parse_spec(spec)[0]
        assert name in DATASETS.names(), name
    model = dict(config["model"])
    assert set(model) - {"name"} <= keywords(MODELS.get(model["name"])) - {"num_classes"}
    batches = dict(config.get("batches") or {})
    assert set(batches) - {"kind"} <= keywords(
        {"pk": pk_batches, "mixed": mixed_batches, "cross_domain": cross_domain_batches}[
            batches.get("kind", "pk")
        ]
    ), batches
    assert batches.get("kind", "pk") in BATCH_KINDS
    for spec in config["losses"].values():
        options = {k: v for k, v in spec.items() if k not in ("name", "weight")}
        get_loss(spec["name"], **options)
    schedule = dict(config["schedule"])
    build_schedule(schedule.pop("name"), 10, **schedule)
    optimizer = {k: v for k, v in config["optimizer"].items() if k != "lr_multipliers"}
    OPTIMIZERS.get(optimizer.pop("name"))(learning_rate=0.1, **optimizer)
    TrainOptions(**{k: v for k, v in (config.get("train") or {}).items() if k != "init_from"})


@pytest.mark.parametrize("path", SHARED_PATH, ids=os.path.basename)
def test_a_shipped_config_names_valid_things(path, monkeypatch):
    monkeypatch.setenv("REID_DATA", "/data")
    config = load_config(path)
    if os.path.basename(path).startswith("embedding_"):
        config = embedding_config(config)
    stages = stage_configs(config, "/runs/x") if "stages" in config else [("", config)]
    for _, stage in stages:
        check_stage(stage)


def test_the_shared_path_configs_are_all_found():
    names = {os.path.basename(p) for p in SHARED_PATH}
    assert {"msml_synth_msml.yaml", "sal_market_8_full.yaml", "embedding_synth.yaml"} <= names
    rows = ("base", "tl", "cccdtl", "dc", "cccdtl_dc", *(f"rtda_t{t}" for t in range(1, 6)))
    for transfer in ("duke_market", "market_duke"):
        assert {f"dien_{transfer}_{row}.yaml" for row in rows} <= names
    for transfer in ("ab", "ba"):
        assert {f"dien_synth_{transfer}_{row}.yaml" for row in rows[:5] + ("rtda_t3",)} <= names


def test_the_common_sections_are_not_runs():
    # Left out of the check above because they train nothing: they must have no losses.
    for name in COMMON:
        assert "losses" not in load_config(os.path.join(CONFIGS, name)), name


PUL = sorted(glob.glob(os.path.join(CONFIGS, "pul_*.yaml")))


@pytest.mark.parametrize("path", PUL, ids=os.path.basename)
def test_a_shipped_pul_config_names_valid_things(path, monkeypatch):
    # The start model trained here is a shared-path run on data.sources; each
    # iteration's fit takes the finetune sections.
    monkeypatch.setenv("REID_DATA", "/data")
    config = load_config(path, ["start.model_path=/runs/embedding/model.keras"])
    check_sections(config, PUL_SECTIONS)
    PULOptions(**config["pul"])
    PULRunOptions(**config["train"])
    check_finetune(config)
    assert parse_spec(config["data"]["target"])[0] in DATASETS.names()
    if config["start"].get("train") is not None:
        check_stage({**config["start"]["train"], "data": {"train": config["data"]["sources"]}})
    assert {"pul_synth.yaml", "pul_synth_from_embedding.yaml", "pul_duke_market.yaml"} <= {
        os.path.basename(p) for p in PUL
    }


EMBAE = sorted(glob.glob(os.path.join(CONFIGS, "embae_*.yaml")))


@pytest.mark.parametrize("path", EMBAE, ids=os.path.basename)
def test_a_shipped_embae_config_names_valid_things(path, monkeypatch):
    # Stage 1 is a shared-path run on data.sources, validated on the target.
    from keras_reid.training.embae import SECTIONS as EMBAE_SECTIONS
    from keras_reid.training.embae.config import (
        autoencoder_options,
        check_variants,
        stage_options,
    )

    monkeypatch.setenv("REID_DATA", "/data")
    config = load_config(path)
    check_sections(config, EMBAE_SECTIONS)
    check_variants(config.get("variants"))
    autoencoder_options(config)
    for section in ("pretrain", "finetune", "finetune_nui"):
        stage_options(config, section)
    data = {"train": config["data"]["sources"], "val": config["data"]["target"]}
    check_stage({**embedding_config(config["embedding"]), "data": data})
    assert {"embae_synth.yaml", "embae_synth_gap.yaml", "embae_synth_gap_multi.yaml"} <= {
        os.path.basename(p) for p in EMBAE
    }
