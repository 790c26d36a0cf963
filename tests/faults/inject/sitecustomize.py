"""Fault injection: SIGKILL this process at a chosen file write, or slow its exit.

Put this folder on PYTHONPATH and set ``KERAS_REID_KILL_AT=REGEX:N``: the N-th
``os.replace`` whose destination's file name matches REGEX kills the process
with SIGKILL just before the rename, i.e. once the temporary file is written
in full but before it takes the place of the previous one. That is the
moment a non-atomic writer would leave a half-written file.

``KERAS_REID_LINGER_AT_EXIT=SECONDS`` makes the process wait that long at its
exit, once its work is done (a slower machine of a multi-worker run).
"""

import atexit
import os
import re
import signal
import time

_SPEC = os.environ.get("KERAS_REID_KILL_AT")
if _SPEC:
    _pattern, _, _count = _SPEC.rpartition(":")
    _regex, _left = re.compile(_pattern), [int(_count)]
    _replace = os.replace

    def _replace_or_die(src, dst, *args, **kwargs):
        if _regex.search(os.path.basename(os.fspath(dst))):
            _left[0] -= 1
            if _left[0] == 0:
                os.kill(os.getpid(), signal.SIGKILL)
        return _replace(src, dst, *args, **kwargs)

    os.replace = _replace_or_die

if os.environ.get("KERAS_REID_LINGER_AT_EXIT"):
    atexit.register(time.sleep, float(os.environ["KERAS_REID_LINGER_AT_EXIT"]))
