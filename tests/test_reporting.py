"""keras-reid evaluate's library path on the real Market-1501 crops."""

import os

import numpy as np
import pandas as pd
import pytest

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError
from keras_reid.models import build_embedding_model
from keras_reid.reporting import evaluate_model, load_keras_model


def test_untrained_model_evaluates_the_real_crops_end_to_end(mini_market_root, tmp_path):
    market = load_dataset("market1501", mini_market_root)
    model = build_embedding_model(alpha=0.25, input_shape=(64, 32, 3), embedding_dim=16)
    out = tmp_path / "report"
    row = evaluate_model(model, market, tta="flip", out=str(out), progress=False)
    # 30 of the 32 queries have a match on another camera (the fixture's README).
    assert int(row["num_query"].iloc[0]) == 32
    assert int(row["num_valid"].iloc[0]) == 30
    for column in ("rank1", "rank5", "mAP", "mINP", "rank1_nd", "mAP_nd"):
        assert 0.0 <= float(row[column].iloc[0]) <= 1.0
    assert row["rank1"].iloc[0] <= row["rank5"].iloc[0] <= row["rank10"].iloc[0]
    umask = os.umask(0)
    os.umask(umask)
    for name in ("results.csv", "results.md", "cmc.png", "ranked_lists.png"):
        assert (out / name).stat().st_size > 0
        # Written through temporary files, yet readable like any file the user writes.
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask
    written = pd.read_csv(out / "results.csv")
    np.testing.assert_allclose(written["mAP"], row["mAP"])
    assert (out / "results.md").read_text().startswith("| dataset | tta | rank1")


def test_load_keras_model_refuses_wrong_files(tmp_path):
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("hello")
    with pytest.raises(ReIDError, match="is not a Keras model file"):
        load_keras_model(not_a_model)
    with pytest.raises(ReIDError, match="no model file"):
        load_keras_model(tmp_path / "missing.keras")
    import keras

    inputs = keras.Input((4,))
    plain = keras.Model(inputs, {"logits": keras.layers.Dense(2, name="logits")(inputs)})
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(ReIDError, match="has no 'embedding' output"):
        load_keras_model(tmp_path / "plain.keras")
