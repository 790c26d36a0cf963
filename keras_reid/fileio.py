"""Small file helpers shared by everything that writes atomically."""

import contextlib
import os
import shutil
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


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as temporary, open(temporary, "w", encoding="utf-8") as stream:
        stream.write(text)


def install_folder(temporary, out, keep_existing=None):
    """Rename the finished folder ``temporary`` onto ``out``, replacing an old ``out``.

    The old folder is first moved aside and deleted only once the new one is
    in place, so a failure leaves the old one where it was. Readers see the
    old folder or the new one, never a mix.

    Args:
        temporary: the complete new folder (beside ``out``, same file system).
        out: the destination.
        keep_existing: optional callable; when the rename fails because
            another process has meanwhile put a folder at ``out`` and
            ``keep_existing()`` is true, that folder is kept and ``temporary``
            deleted instead of raising.

    Example:
        >>> install_folder(tempfile.mkdtemp(dir="saved_models/emb"), "saved_models/emb/1")
    """
    old = None
    if os.path.isdir(out):
        if os.listdir(out):
            parent, name = os.path.split(os.path.abspath(out))
            old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
            os.rmdir(old)
            os.rename(out, old)
        else:
            os.rmdir(out)
    try:
        os.rename(temporary, out)
    except OSError:
        if keep_existing is not None and os.path.isdir(out) and keep_existing():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            if old is not None and not os.path.exists(out):
                os.rename(old, out)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
