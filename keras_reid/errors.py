"""The one exception type that the CLI turns into a one-line message."""


class ReIDError(ValueError):
    """A problem with the user's input: a path, a file, an argument or a config.

    The message names what is wrong and what to do about it, in one line.
    The CLI prints it without a traceback (unless ``--debug``) and exits 2.
    """
