"""One small registry used by datasets, backbones and losses."""

from keras_reid.errors import ReIDError


class Registry:
    """A name -> object map filled by a decorator.

    Args:
        kind: what the registry holds, used in error messages ("dataset").

    Example:
        >>> BACKBONES = Registry("backbone")
        >>> @BACKBONES.register("tiny")
        ... def tiny(): ...
        >>> BACKBONES.get("tiny")
    """

    def __init__(self, kind):
        self.kind = kind
        self._items = {}

    def register(self, name):
        """Decorator adding ``obj`` under ``name``; a duplicate name is an error."""

        def decorator(obj):
            if name in self._items:
                raise ReIDError(
                    f"{self.kind} {name!r} is registered twice "
                    f"({self._items[name].__module__} and {obj.__module__}); rename one."
                )
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name):
        """The object registered as ``name``; an unknown name lists the valid ones."""
        try:
            return self._items[name]
        except KeyError:
            raise ReIDError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}."
            ) from None

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items

    def __iter__(self):
        return iter(self.names())
