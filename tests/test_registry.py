import pytest

from keras_reid.errors import ReIDError
from keras_reid.registry import Registry


def test_register_and_get():
    registry = Registry("widget")

    @registry.register("b")
    def b():
        return "b"

    @registry.register("a")
    def a():
        return "a"

    assert registry.get("a") is a
    assert registry.names() == ["a", "b"]
    assert "b" in registry and "c" not in registry


def test_unknown_name_lists_valid_ones():
    registry = Registry("widget")
    registry.register("alpha")(object)
    registry.register("beta")(object)
    with pytest.raises(ReIDError, match=r"unknown widget 'gamma'; expected one of: alpha, beta"):
        registry.get("gamma")


def test_duplicate_name_is_an_error():
    registry = Registry("widget")
    registry.register("x")(int)
    with pytest.raises(ReIDError, match="registered twice"):
        registry.register("x")(float)
