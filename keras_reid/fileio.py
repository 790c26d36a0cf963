"""Small file helpers shared by everything that writes atomically."""

import contextlib
import hashlib
import os
import re
import shutil
import tempfile

from keras_reid.errors import ReIDError


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


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-")


def temporary_prefix(path):
    """The hidden name prefix of a temporary file or folder that will become ``path``.

    ``.NAME.tmp-PID-``: hidden, so that nobody mistakes it for a result, and
    tagged with the writer's process id, so that :func:`remove_stale_temporaries`
    can tell a killed writer's leftovers from a live writer's work.
    """
    return f".{os.path.basename(os.fspath(path))}.tmp-{os.getpid()}-"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder, name=None, recursive=True):
    """Delete the temporaries (see :func:`temporary_prefix`) that killed processes left.

    Temporaries of processes still running are kept. ``name`` limits the
    clean-up to the temporaries of that one file or folder name; ``recursive``
    also cleans the sub-folders. Returns the removed paths.

    Example:
        >>> remove_stale_temporaries("runs/embedding_synth")
    """
    removed = []
    if not os.path.isdir(folder):
        return removed
    for parent, folders, files in os.walk(folder):
        for entry in [*files, *folders]:
            match = _TEMPORARY.match(entry)
            if not match or (name is not None and match["name"] != name):
                continue
            if int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
                path = os.path.join(parent, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
                removed.append(path)
        folders[:] = [f for f in folders if not _TEMPORARY.match(f)] if recursive else []
    return removed


def _not_a_folder(path):
    """The first existing part of ``path`` (a parent or itself) that is not a folder, or None."""
    parts = [os.path.abspath(os.fspath(path))]
    while os.path.dirname(parts[-1]) != parts[-1]:
        parts.append(os.path.dirname(parts[-1]))
    for part in reversed(parts):
        if not os.path.isdir(part):
            return part if os.path.lexists(part) else None
    return None


def check_folder_path(path):
    """ReIDError when a part of ``path`` (a parent, or ``path`` itself) is a file, not a folder.

    ``os.makedirs`` says only "[Errno 17] File exists" or "Not a directory"
    about the path it was given; this names the file in the way.
    """
    path = os.path.abspath(os.fspath(path))
    blocker = _not_a_folder(path)
    if blocker is None:
        return
    what = "a file, not a folder" if os.path.isfile(blocker) else "not a folder"
    where = "" if blocker == path else f"cannot create the folder {path}: "
    raise ReIDError(f"{where}{blocker} is {what}; choose another --out, or move it away.")


def make_folder(path):
    """Create the folder ``path`` and its parents (it may exist); see :func:`check_folder_path`."""
    check_folder_path(path)
    os.makedirs(path, exist_ok=True)
    return path


def temporary_folder(out):
    """A new hidden temporary folder beside ``out``, to install with :func:`install_folder`."""
    check_folder_path(out)  # names ``out`` in the message, not only its parent
    parent = make_folder(os.path.dirname(os.path.abspath(out)))
    return as_created(tempfile.mkdtemp(prefix=temporary_prefix(out), dir=parent))


@contextlib.contextmanager
def atomic_output(path, suffix=""):
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    A reader never sees a half-written file, and a failure leaves nothing
    behind; a kill leaves at most a hidden temporary, removed by the next run
    (:func:`remove_stale_temporaries`). The file is flushed to disk before the
    rename, so ``path`` holds the old or the new content even after a crash.
    ``suffix`` keeps an extension on the temporary name for writers that need it.

    Example:
        >>> with atomic_output("results.csv") as tmp:
        ...     table.to_csv(tmp)
    """
    path = os.path.abspath(os.fspath(path))
    folder = make_folder(os.path.dirname(path))
    handle, temporary = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=suffix, dir=folder)
    os.close(handle)
    as_created(temporary)
    try:
        yield temporary
        _sync(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _sync(path):
    """Flush ``path`` (a file, or every file of a folder) to the disk."""
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(p, name) for p, _, names in os.walk(path) for name in names]
    for name in paths:
        descriptor = os.open(name, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def read_text(path, what="file", fix="save it as UTF-8"):
    """The text of a UTF-8 file (a byte-order mark, as Excel writes, is dropped).

    Raises:
        ReIDError: for a file that is not UTF-8, naming the first bad byte's
            line, then ``fix`` (what to do), or one this user may not read.
    """
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except PermissionError:
        raise ReIDError(
            f"{what} {path} cannot be read (permission denied); make it readable for this "
            f"user (as its owner: chmod a+r {path}) or pass a copy you may read."
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ReIDError(
            f"{what} {path} is not UTF-8 text (line {line}, byte {data[error.start]:#04x}); {fix}."
        ) from None


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as temporary, open(temporary, "w", encoding="utf-8") as stream:
        stream.write(text)


def install_folder(temporary, out, keep_existing=None, replace=True):
    """Rename the finished folder ``temporary`` onto ``out``.

    With ``replace``, an old ``out`` is first moved aside and deleted only once
    the new one is in place, so a failure leaves the old one where it was.
    Readers see the old folder or the new one, never a mix. Without it, the
    rename itself is the test: a non-empty ``out`` that appeared meanwhile (a
    concurrent writer) is never replaced.

    Args:
        temporary: the complete new folder (beside ``out``, same file system).
        out: the destination.
        keep_existing: optional callable; when ``out`` holds a folder at the
            time of the rename (another process put it there) and
            ``keep_existing()`` is true, that folder is kept and ``temporary``
            deleted instead of raising.
        replace: replace a non-empty ``out``. Default True.

    Raises:
        FileExistsError: ``replace`` is false and ``out`` is not empty (and
            not kept by ``keep_existing``).

    Example:
        >>> install_folder(temporary_folder("saved_models/emb/1"), "saved_models/emb/1")
    """
    old = None
    _sync(temporary)
    if replace and os.path.isdir(out) and os.listdir(out):
        parent, name = os.path.split(os.path.abspath(out))
        old = tempfile.mkdtemp(prefix=temporary_prefix(out), dir=parent)
        os.rmdir(old)
        os.rename(out, old)
    try:
        # Linux replaces an empty folder and refuses a non-empty one.
        os.rename(temporary, out)
    except OSError as error:
        if keep_existing is not None and os.path.isdir(out) and keep_existing():
            shutil.rmtree(temporary, ignore_errors=True)
            return
        if old is not None and not os.path.exists(out):
            os.rename(old, out)
        shutil.rmtree(temporary, ignore_errors=True)
        if not replace and os.path.isdir(out):
            raise FileExistsError(
                f"{out} was written by another process meanwhile; it was kept. Choose "
                "another folder, or replace it explicitly (--overwrite)."
            ) from error
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def file_sha256(path):
    """The hex SHA-256 of a file's bytes, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
