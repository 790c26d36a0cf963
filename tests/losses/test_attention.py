import numpy as np
import pytest
from helpers import config_round_trip

from keras_reid.losses import SelfAttentionConstraint, get_loss

LABELS = np.zeros(3)  # a recipe gives every output the labels; this loss ignores them


def sac_reference(maps):
    """SAL eq. (2) by loops: per sample |a6 - a5|^2 + |a6 - a4|^2, then the batch mean."""
    values = []
    for a4, a5, a6 in maps:
        total = 0.0
        for earlier in (a5, a4):
            total += sum((x - y) ** 2 for x, y in zip(a6.ravel(), earlier.ravel(), strict=True))
        values.append(total)
    return np.mean(values)


def test_matches_the_papers_equation():
    maps = np.random.default_rng(0).random((3, 3, 4, 2)).astype("float32")
    loss = get_loss("sac")
    np.testing.assert_allclose(float(loss(LABELS, maps)), sac_reference(maps), rtol=1e-5)
    # Flattened positions give the same value; equal maps give 0.
    np.testing.assert_allclose(
        float(loss(LABELS, maps.reshape(3, 3, 8))), sac_reference(maps), 1e-5
    )
    same = np.repeat(maps[:, -1:], 3, axis=1)
    assert float(loss(LABELS, same)) == 0.0
    config_round_trip(SelfAttentionConstraint())


def test_one_level_is_refused():
    with pytest.raises(ValueError, match=r"at least two levels.*shape \(2, 1, 4, 2\)"):
        SelfAttentionConstraint()(np.zeros(2), np.zeros((2, 1, 4, 2), "float32"))


def test_a_non_finite_map_gives_a_non_finite_loss():
    maps = np.zeros((2, 3, 4, 2), "float32")
    maps[1, 0, 0, 0] = np.nan
    assert np.isnan(float(SelfAttentionConstraint()(np.zeros(2), maps)))
