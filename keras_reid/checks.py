"""The type checks every argument check shares: whole numbers and real numbers, never bools.

``True`` is an ``int`` to Python, and a ``numpy.int64`` is not; an argument
check wants neither surprise. :func:`is_int` and :func:`is_number` answer
"is this a usable count / number in range?", and each caller keeps its own
one-line message (what the value is for, and what to give instead);
:func:`check_non_negative` is the ValueError of the losses and layers.

Example:
    >>> is_int(3, minimum=1), is_int(True), is_int(np.int64(2), maximum=4, numpy=True)
    (True, False, True)
    >>> is_number(0.5, above=0), is_number("0.5")
    (True, False)
"""

from numbers import Integral, Real


def is_int(value, minimum=None, maximum=None, numpy=False):
    """Whether ``value`` is an int (not a bool) in [minimum, maximum].

    ``numpy=True`` also takes numpy integers: for counts that only index or
    slice arrays. Arguments that become a layer's size stay Python ints, which
    Keras (``Dense(units)``) and the saved configs require.
    """
    if isinstance(value, bool) or not isinstance(value, Integral if numpy else int):
        return False
    return bool((minimum is None or value >= minimum) and (maximum is None or value <= maximum))


def is_number(value, minimum=None, above=None):
    """Whether ``value`` is a real number (not bool), ``>= minimum`` and ``> above`` where given."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return False
    return bool((minimum is None or value >= minimum) and (above is None or value > above))


def check_non_negative(name, value, allow_soft=False):
    """``value`` as a float (or "soft" when ``allow_soft``); else a keras-hub style ValueError."""
    if allow_soft and value == "soft":
        return value
    if not is_number(value, minimum=0):
        expected = "'soft' or a non-negative number" if allow_soft else "a non-negative number"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return float(value)
