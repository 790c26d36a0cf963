"""Small file helpers shared by everything that writes atomically."""

import contextlib
import os
import tempfile


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


@contextlib.contextmanager
def atomic_output(path, suffix=""):
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    A reader never sees a half-written file, and a failure leaves nothing behind.
    ``suffix`` keeps an extension on the temporary name for writers that need it.

    Example:
        >>> with atomic_output("results.csv") as tmp:
        ...     table.to_csv(tmp)
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.tmp-", suffix=suffix, dir=folder
    )
    os.close(handle)
    as_created(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
