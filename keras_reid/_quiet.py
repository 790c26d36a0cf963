"""Keep TensorFlow's C++ start-up chatter off stderr.

TensorFlow's runtime logs to file descriptor 2 before absl logging is
initialised, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence these lines: the oneDNN
and CPU-feature notices at import, cost-model warnings while tracing, the
status of a failed op (with its "\t [[{{node ...}}]]" trace on the lines after
it), and the image decoders' errors about a damaged file that they do not name
(TensorFlow's libjpeg prints its own message with C's stderr, unprefixed:
"Improper call to JPEG library in state 201"). They say nothing a user can act
on: keras_reid names the damaged file itself. Other errors (E/F lines) and
anything else pass through.
"""

import contextlib
import os
import re
import sys
import tempfile

# libjpeg's messages about a damaged file, as whole lines: the errors and
# warnings of libjpeg-turbo's jerror.h that decoding can meet.
_LIBJPEG = (
    rb"Corrupt JPEG data: .*",
    rb"Premature end of (JPEG|input) file",
    rb"Input file read error",
    rb"Empty input file",
    rb"Improper call to JPEG library in state \d+",
    rb"JPEG datastream contains no image",
    rb"Empty JPEG image \(DNL not supported\)",
    rb"Not a JPEG file: starts with 0x\w\w 0x\w\w",
    rb"Invalid JPEG file structure: .*",
    rb"Bogus (Huffman table definition|marker length|sampling factors|JPEG colorspace)",
    rb"Bogus (DAC|DHT|DQT) index \d+",
    rb"Bogus DAC value 0x\w+",
    rb"(Huffman|Quantization|Arithmetic) table 0x\w\w was not defined",
    rb"Huffman code size table overflow",
    rb"Missing Huffman code table entry",
    rb"DCT coefficient out of range",
    rb"Invalid component ID \d+ in SOS",
    rb"Invalid progressive parameters .*",
    rb"Invalid SOS parameters for sequential JPEG",
    rb"Inconsistent progression sequence for component \d+ coefficient \d+",
    rb"Unsupported JPEG process: SOF type 0x\w\w",
    rb"Unsupported marker type 0x\w\w",
    rb"Unsupported JPEG data precision \d+",
    rb"Unsupported color conversion request",
    rb"Sampling factors too large for interleaved scan",
    rb"Too many color components: \d+, max \d+",
    rb"Didn't expect more than one scan",
    rb"Maximum supported image dimension is \d+ pixels",
    rb"Image too wide for this implementation",
    rb"Unknown Adobe color transform code \d+",
    rb"Warning: unknown JFIF revision number [\d.]+",
    rb"Application transferred too (few|many) scanlines",
)
NOISE = re.compile(
    rb"^([IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"
    # The image decoders' complaints ("Premature end of JPEG data") name no
    # file; keras_reid names the file and the reason itself.
    rb"|E\d{4} [\d:.]+ +\d+ (jpeg_mem|png_io|gif_io|bmp_io)\.cc:\d+\]"
    rb"|(" + rb"|".join(_LIBJPEG) + rb")\r?\n?$"
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


class NoiseFilter:
    """Drops the noise lines from a stream fed in pieces, and the lines that continue them.

    A continuation line starts with a tab (TensorFlow's "\\t [[{{node ...}}]]"
    trace of a failed op's status); it goes with the line it continues, even
    when the two arrive in different pieces. A piece holds whole lines (split
    after \\n or \\r), except perhaps the stream's last.

    Example:
        >>> noise = NoiseFilter()
        >>> noise(b"W0000 00:00:1.2 7 rendezvous.cc:412] aborting\\n") + noise(b"\\t [[x]]\\n")
        b''
    """

    def __init__(self):
        self.dropping = False

    def __call__(self, data):
        kept = []
        for line in re.split(rb"(?<=[\r\n])", data):
            if not line or (self.dropping and line.startswith(b"\t")):
                continue
            self.dropping = bool(NOISE.match(line))
            if not self.dropping:
                kept.append(line)
        return b"".join(kept)


def drop_noise(data):
    """``data`` without the noise lines and their continuations (see :class:`NoiseFilter`)."""
    return NoiseFilter()(data)


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
