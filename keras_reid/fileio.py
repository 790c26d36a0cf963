"""Small file helpers shared by everything that writes atomically."""

import os


def as_created(path):
    """Give a ``tempfile.mkstemp``/``mkdtemp`` path the mode a plain create would have.

    Temporary files are created private (0600, 0700) and keep that mode when
    renamed into place; results, plots and generated datasets should be
    readable like any file the user writes (0666/0777 minus the umask).
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)
    return path
