import numpy as np
import pytest
import tensorflow as tf

from keras_reid.losses.distance import check_non_negative, identity_masks, pairwise_distances


def test_pairwise_distances_match_numpy_and_are_exactly_zero_on_the_diagonal():
    embeddings = np.random.default_rng(0).normal(size=(6, 3)).astype("float32") * 10
    expected = np.linalg.norm(embeddings[:, None] - embeddings[None, :], axis=-1)
    got = np.asarray(pairwise_distances(embeddings))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    assert np.all(np.diag(got) == 0.0)
    np.testing.assert_allclose(pairwise_distances(embeddings, squared=True), expected**2, rtol=1e-4)


def test_gradient_is_finite_where_embeddings_coincide():
    variable = tf.Variable(np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]], "float32"))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(pairwise_distances(variable))
    gradient = tape.gradient(total, variable).numpy()
    assert np.all(np.isfinite(gradient))
    # Points 0 and 1 coincide: their pair contributes nothing, only the pairs with point 2.
    unit = np.array([1.0, 2.0]) / np.sqrt(5.0)
    np.testing.assert_allclose(gradient, [2 * unit, 2 * unit, -4 * unit], rtol=1e-5)


def test_identity_masks():
    positive, negative = identity_masks(tf.constant([7, 3, 7]))
    np.testing.assert_array_equal(positive, [[0, 0, 1], [0, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(negative, [[0, 1, 0], [1, 0, 1], [0, 1, 0]])


def test_check_non_negative():
    assert check_non_negative("margin", 1) == 1.0
    assert check_non_negative("margin", "soft", allow_soft=True) == "soft"
    for value in (-1, "hard", None, True):
        with pytest.raises(ValueError, match=f"Received: margin={value!r}"):
            check_non_negative("margin", value, allow_soft=True)
