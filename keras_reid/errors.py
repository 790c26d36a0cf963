"""The one exception type that the CLI turns into a one-line message."""


class ReIDError(ValueError):
    """A problem with the user's input: a path, a file, an argument or a config.

    The message names what is wrong and what to do about it, in one line.
    The CLI prints it without a traceback (unless ``--debug``) and exits 2.
    """


def check_one_of(what, value, choices, hint=""):
    """``value`` when it is one of ``choices``, else a ReIDError naming them.

    Example:
        >>> check_one_of("head_order", "relu", ("bn_relu", "relu_bn"))
        Traceback (most recent call last):
        keras_reid.errors.ReIDError: unknown head_order 'relu'; expected one of: bn_relu, relu_bn.
    """
    if value not in choices:
        extra = f" ({hint})" if hint else ""
        raise ReIDError(
            f"unknown {what} {value!r}; expected one of: {', '.join(map(str, choices))}{extra}."
        )
    return value


def one_line(text):
    """``text`` with every run of whitespace (newlines included) collapsed to one space.

    Messages quoted from TensorFlow or Keras span several lines; an error
    message must stay one line, and whole: nothing is cut off.
    """
    return " ".join(str(text).split())
