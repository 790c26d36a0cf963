"""One small registry, and one signature check, for datasets, models, losses, optimizers, schedules.

Every name a config gives (``loss: {name: msml, margin: 0.3}``) is looked up
in a :class:`Registry`, and its other keys are checked against the
registered callable's keyword arguments by :meth:`Registry.check` before
anything is built, so that a typo is one line listing what is accepted.
"""

import inspect

from keras_reid.errors import ReIDError


def accepted_keys(fn, exclude=()):
    """The keyword arguments ``fn`` takes, except ``exclude`` (filled by the caller)."""
    params = inspect.signature(fn).parameters.values()
    return [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in exclude
    ]


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

    def check(self, name, given, exclude=(), extra=()):
        """The object registered as ``name``, once ``given``'s keys are arguments it takes.

        Args:
            name: the registered name.
            given: the keyword arguments a config gives it.
            exclude: arguments the caller fills in itself (not the config's to give).
            extra: keys the caller takes beside the object's own (listed as valid).

        An unknown key is one ReIDError naming it, its value and the valid keys.
        """
        obj = self.get(name)
        # Named arguments only: a **kwargs (Keras optimizers' base-class options)
        # is not a promise that any key means something.
        valid = [k for k in accepted_keys(obj, exclude) if k != "self"]
        unknown = sorted(set(given) - set(valid) - set(extra))
        if unknown:
            accepted = [*valid, *extra]
            if accepted:
                expected = f"expected some of: {', '.join(accepted)}"
            else:
                expected = "it takes none" + (f" besides {', '.join(exclude)}" if exclude else "")
            raise ReIDError(
                f"{self.kind} {name!r} takes no argument(s) {', '.join(unknown)}; {expected}. "
                f"Received: {', '.join(f'{k}={given[k]!r}' for k in unknown)}"
            )
        return obj

    def build(self, name, *args, **kwargs):
        """``check`` then call: the object registered as ``name`` built from the arguments."""
        return self.check(name, kwargs)(*args, **kwargs)

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items

    def __iter__(self):
        return iter(self.names())
