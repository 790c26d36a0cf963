"""Shared fixtures: paths into ../shared (skipped with a reason where absent)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[2] / "shared"
MINI_MARKET = SHARED / "data" / "mini_market1501"
MOBILENET_025 = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
CUHK03_LABELED = SHARED / "data" / "cuhk03_labeled"


@pytest.fixture(scope="session")
def mini_market_root():
    """../shared/data/mini_market1501: 96 real Market-1501 crops."""
    if not MINI_MARKET.is_dir():
        pytest.skip(f"real Market-1501 crops not found at {MINI_MARKET} (../shared is CI-only)")
    return MINI_MARKET


@pytest.fixture(scope="session")
def cuhk03_labeled_root():
    """../shared/data/cuhk03_labeled: 8,177 real CUHK03 crops in train/ and val/."""
    if not CUHK03_LABELED.is_dir():
        pytest.skip(f"real CUHK03 crops not found at {CUHK03_LABELED} (../shared is CI-only)")
    return CUHK03_LABELED


@pytest.fixture(scope="session")
def mobilenet_025_weights():
    """../shared/weights: real ImageNet MobileNet alpha 0.25 no-top weights."""
    if not MOBILENET_025.is_file():
        pytest.skip(
            f"ImageNet MobileNet weights not found at {MOBILENET_025} (../shared is CI-only)"
        )
    return MOBILENET_025


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A tiny SynthReID generation per preset at 64x32: {preset: root}."""
    from keras_reid.data.synthreid import generate

    base = tmp_path_factory.mktemp("synth")
    return {
        preset: generate(preset, str(base / preset), ids=12, size=(64, 32))
        for preset in ("synth-a", "synth-b")
    }
