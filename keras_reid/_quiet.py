"""Keep TensorFlow's C++ start-up chatter off stderr.

TensorFlow's runtime logs to file descriptor 2 before absl logging is
initialised, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence these lines: the oneDNN
and CPU-feature notices at import, cost-model warnings while tracing, and the
image decoders' errors about a damaged file that they do not name. They say
nothing a user can act on. Other errors (E/F lines) and anything else pass through.
"""

import contextlib
import os
import re
import sys
import tempfile

NOISE = re.compile(
    rb"^([IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"
    # The image decoders' complaints ("Premature end of JPEG data") name no
    # file; keras_reid names the file and the reason itself.
    rb"|E\d{4} [\d:.]+ +\d+ (jpeg_mem|png_io|gif_io|bmp_io)\.cc:\d+\]"
    # libjpeg's own line for a JPEG that ends in its first bytes, unprefixed.
    rb"|Input file read error\r?\n?$"
    # The second line of a multi-worker start-up notice ("Waiting for 1/2 tasks
    # to connect." / "Example stragglers:"): a task's name alone.
    rb"|/job:\w+/replica:\d+/task:\d+\r?\n?$"
    # The rest of a barrier's notice ("Barrier(...) has passed with status:
    # DEADLINE_EXCEEDED ..."): keras_reid names the timeout in its own line.
    rb"|# of tasks that reached the barrier: \d+/\d+\.\r?\n?$"
    rb"|The first task at the barrier: /job:\S+ Some timed out task names:\r?\n?$"
    rb"| \[type\.googleapis\.com/tensorflow\.[^\n]*BarrierError="  # its payloads, any order
    rb"|WARNING: All log messages before absl::InitializeLog"
    rb"|To enable the following instructions: )"
)


def drop_noise(data):
    """``data`` without the noise lines (lines split after \\n or \\r)."""
    return b"".join(part for part in re.split(rb"(?<=[\r\n])", data) if not NOISE.match(part))


@contextlib.contextmanager
def quiet_fd2():
    """Hold fd 2 in a temporary file inside the block; replay all but the noise after."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (some embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as buffer:
        os.dup2(buffer.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            buffer.seek(0)
            kept = drop_noise(buffer.read())
            if kept:
                os.write(2, kept)


def progress_wanted(progress=True):
    """Whether to draw a progress bar: asked for, and stderr a terminal or a notebook.

    A bar redrawn with carriage returns is noise in a log file or a pipe (and
    it would stand before the one-line error of a failing command there).
    """
    if not progress:
        return False
    if type(sys.stderr).__module__.startswith("ipykernel"):  # a notebook's output stream
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
