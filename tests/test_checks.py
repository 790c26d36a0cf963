"""The shared type checks: counts are ints and numbers are reals, never bools, in range."""

import math
from fractions import Fraction

import numpy as np
import pytest

from keras_reid.checks import check_non_negative, is_int, is_number


@pytest.mark.parametrize(
    "value, kwargs, expected",
    [
        (3, {}, True),
        (3, {"minimum": 3}, True),
        (3, {"minimum": 4}, False),
        (3, {"maximum": 2}, False),
        (0, {"minimum": 0, "maximum": 0}, True),
        (True, {}, False),  # a bool is an int to Python, never a count here
        (3.0, {}, False),
        ("3", {}, False),
        (np.int64(3), {}, False),  # a layer size must be a Python int (Keras' Dense)
        (np.int64(3), {"numpy": True, "minimum": 1}, True),
        (np.bool_(True), {"numpy": True}, False),
    ],
)
def test_is_int(value, kwargs, expected):
    assert is_int(value, **kwargs) is expected


@pytest.mark.parametrize(
    "value, kwargs, expected",
    [
        (0.5, {}, True),
        (2, {"minimum": 0}, True),
        (0, {"above": 0}, False),
        (0, {"minimum": 0}, True),
        (-1e-9, {"minimum": 0}, False),
        (np.float32(0.25), {"above": 0}, True),
        (Fraction(1, 3), {"minimum": 0}, True),
        (math.nan, {"minimum": 0}, False),  # NaN is below nothing and above nothing
        (math.inf, {"above": 0}, True),
        (False, {}, False),
        ("1", {}, False),
        (None, {}, False),
    ],
)
def test_is_number(value, kwargs, expected):
    assert is_number(value, **kwargs) is expected


def test_check_non_negative_returns_a_float_or_soft_and_names_the_argument():
    assert check_non_negative("margin", 1) == 1.0 and isinstance(check_non_negative("m", 1), float)
    assert check_non_negative("margin", "soft", allow_soft=True) == "soft"
    with pytest.raises(ValueError, match=r"`margin` must be a non-negative number\. Received: "):
        check_non_negative("margin", -0.1)
    with pytest.raises(ValueError, match="'soft' or a non-negative number"):
        check_non_negative("margin", True, allow_soft=True)
