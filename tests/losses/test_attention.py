import numpy as np
import pytest

from keras_reid.losses import attention_constraint


def test_matches_numpy():
    rng = np.random.default_rng(0)
    a4, a5, a6 = (rng.random((3, 12)).astype("float32") for _ in range(3))
    expected = np.mean(
        [np.sum((a6[b] - a5[b]) ** 2) + np.sum((a6[b] - a4[b]) ** 2) for b in range(3)]
    )
    np.testing.assert_allclose(float(attention_constraint(a4, a5, a6)), expected, rtol=1e-6)
    assert float(attention_constraint(a6, a6, a6)) == 0.0


def test_maps_of_different_sizes_are_rejected():
    maps = np.zeros((2, 64), "float32")
    with pytest.raises(ValueError, match=r"same number of positions H\*W.*\(2, 16\)"):
        attention_constraint(maps, maps, np.zeros((2, 16), "float32"))
