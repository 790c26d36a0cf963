"""Run the installed ``keras-reid`` console script in a subprocess, as a user would.

The in-process ``main()`` shares the test's file descriptors and interpreter
exit, so it cannot see what a user's terminal, log file or pipe receives.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

# The console script installed beside this interpreter (a venv's bin/), else the PATH's.
_BESIDE = Path(sys.executable).with_name("keras-reid")
SCRIPT = str(_BESIDE) if _BESIDE.exists() else shutil.which("keras-reid")


def start(args, stderr="pipe", workdir=None, env=None, prefix=()):
    """Start ``keras-reid ARGS``; ``stderr`` is "pipe" or the path of a file to write.

    ``prefix`` is a command to run it under (such as ``setpriv ...``). Returns
    the ``Popen`` (stdout piped; with a file, ``popen.stderr_path`` names it).
    """
    assert SCRIPT, "keras-reid is not installed: pip install -e '.[cpu,test]'"
    environment = {**os.environ, **(env or {})}
    command = [*prefix, SCRIPT, *map(str, args)]
    if stderr == "pipe":
        popen = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=environment,
        )
        popen.stderr_path = None
        return popen
    with open(stderr, "wb") as stream:
        popen = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stream,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=environment,
        )
    popen.stderr_path = stderr
    return popen


def finish(popen, timeout=600):
    """Wait for a started command: ``(exit code, stdout, stderr)`` as text."""
    out, err = popen.communicate(timeout=timeout)
    if popen.stderr_path is not None:
        err = Path(popen.stderr_path).read_bytes()
    return popen.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def run(args, stderr="pipe", workdir=None, env=None, timeout=600, prefix=()):
    """Run ``keras-reid ARGS`` to the end: ``(exit code, stdout, stderr)``."""
    return finish(start(args, stderr, workdir, env, prefix), timeout)
