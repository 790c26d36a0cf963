"""The model registry: ``build_model(name, **args)``, the ``model`` section of a recipe.

Every registered model is a functional ``keras.Model`` from raw RGB images
("images") to a dict of named outputs ("embedding", and "logits" when it has
a classifier), with its trunk as the top-level layer "trunk". A builder that
takes ``num_classes`` gets a classifier from it; ``num_classes=None`` means
none (a recipe fills it in from its class map).
"""

from keras_reid.checks import is_int
from keras_reid.errors import ReIDError
from keras_reid.registry import Registry

MODELS = Registry("model")


def register_model(name):
    """Decorator registering a model builder ``fn(**args) -> keras.Model`` under ``name``."""
    return MODELS.register(name)


def build_model(name, **args):
    """The registered model ``name`` built from ``args`` (its builder's keyword arguments).

    Args:
        name: "trinet" (:func:`build_embedding_model`) or "msml" (:func:`build_msml_model`).
        **args: the builder's arguments; an unknown one is a one-line error
            listing those there are.

    Example:
        >>> model = build_model("msml", backbone="small_convnet", input_shape=(64, 32, 3),
        ...                     num_classes=10)
        >>> sorted(model.output_names)
        ['embedding', 'logits']
    """
    return MODELS.build(name, **args)


def check_num_classes(num_classes):
    """``num_classes`` is None (no classifier) or a positive int."""
    if num_classes is not None and not is_int(num_classes, minimum=1):
        raise ReIDError(
            "num_classes must be a positive int (the number of training identities) or "
            f"None for no classifier. Received: num_classes={num_classes!r}"
        )
    return num_classes
