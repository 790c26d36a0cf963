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


def test_one_signature_check_for_every_registry():
    registry = Registry("widget")

    @registry.register("gear")
    class Gear:
        def __init__(self, teeth, size=1.0, *, colour="grey", **base_options):
            self.teeth, self.size, self.colour = teeth, size, colour

    gear = registry.build("gear", 12, colour="red")
    assert (gear.teeth, gear.size, gear.colour) == (12, 1.0, "red")
    # A **kwargs is no promise that any key means something: only named arguments count.
    with pytest.raises(ReIDError) as error:
        registry.build("gear", 12, colur="red")
    assert str(error.value) == (
        "widget 'gear' takes no argument(s) colur; expected some of: teeth, size, colour. "
        "Received: colur='red'"
    )
    # What the caller fills in is not the config's to give; its own extra keys are.
    assert registry.check("gear", {"size": 2, "spin": 1}, exclude=("teeth",), extra=("spin",))
    with pytest.raises(ReIDError, match=r"takes no argument\(s\) teeth; expected some of: size, "):
        registry.check("gear", {"teeth": 3}, exclude=("teeth",), extra=("spin",))
