"""What a command prints when it fails: one line, and nothing after it.

:func:`describe_error` turns an error into one line naming what happened, to
which file, and what to do; the stderr filter drops TensorFlow's runtime
chatter so that the line is not buried; after it, fd 2 is silenced.
"""

import errno
import os
import re
import sys
import threading

from keras_reid._quiet import NoiseFilter

EXIT_USAGE = 2


def filter_stderr():
    """Route fd 2 through a thread that drops TensorFlow's runtime chatter (see _quiet)."""
    read_end, write_end = os.pipe()
    real = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        pending, noise = b"", NoiseFilter()
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            pending += chunk
            # Split after \n or \r so progress bars (\r updates) pass through live.
            parts = re.split(rb"(?<=[\r\n])", pending)
            pending = parts.pop()
            kept = noise(b"".join(parts))
            if kept:
                os.write(real, kept)
        os.write(real, noise(pending))  # the last line, if it has no end

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()

    def restore(silence=False):
        """Give fd 2 back; with ``silence`` (after a failed command's last line), /dev/null.

        Going straight from the pipe to /dev/null leaves no moment in which
        tf.data's decoder threads, still working through the batches queued
        before the error ("Premature end of JPEG data"), write unfiltered to
        the real stderr after the one-line error.
        """
        sys.stderr.flush()
        target = os.open(os.devnull, os.O_WRONLY) if silence else real
        os.dup2(target, 2)  # closes the pipe's last write end: the pump drains and stops
        if silence:
            os.close(target)
        # Wait for the pump to copy what is left (the error line above all): a
        # daemon thread is killed at exit with its data still in the pipe. A
        # child process that inherited the write end keeps the pipe open, so
        # the wait is bounded.
        thread.join(timeout=10)
        if not thread.is_alive():
            os.close(read_end)

    return restore


def tensorflow_errors():
    """TensorFlow's errors about files and resources: the user's to fix, not a bug of ours."""
    if "tensorflow" not in sys.modules:
        return ()
    from tensorflow import errors

    return (
        errors.NotFoundError,
        errors.PermissionDeniedError,
        errors.ResourceExhaustedError,
        errors.DataLossError,
        errors.AlreadyExistsError,
    )


_ADVICE = {
    errno.ENOSPC: "free some space or write elsewhere (another --out), then run again "
    "(training: with --resume)",
    errno.EDQUOT: "free some space or write elsewhere, then run again",
    errno.EROFS: "choose a writable folder",
    errno.EACCES: "choose a folder you may write to, or fix the permissions",
    errno.EPERM: "choose a folder you may write to, or fix the permissions",
    errno.ENOENT: "check the path",
    errno.EISDIR: "pass a file, not a folder",
    errno.ENOTDIR: "check the path: a part of it is a file",
    errno.ELOOP: "fix the symbolic link loop",
    errno.EIO: "check the disk",
}


def describe_error(error):
    """One line for an error: what happened, to which file, and what to do."""
    if isinstance(error, OSError) and error.errno in _ADVICE:
        where = f": {error.filename}" if error.filename else ""
        text = f"{error.strerror}{where}; {_ADVICE[error.errno]}."
    elif isinstance(error, MemoryError):
        text = "out of memory; use smaller batches or images, or a machine with more memory."
    elif type(error).__module__.startswith("tensorflow"):
        text = f"{type(error).__name__}: {error.message}"
    else:
        text = str(error) or type(error).__name__
    # One line, however long: never cut, never wrapped.
    return " ".join(text.split())
