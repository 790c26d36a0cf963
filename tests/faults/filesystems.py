"""Small tmpfs mounts for tests of full and read-only file systems."""

import contextlib
import subprocess

import pytest


@contextlib.contextmanager
def tmpfs(mount, options, what):
    """Mount a tmpfs with ``options`` at ``mount``; skip, naming ``what``, where not allowed."""
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount {what} here ({done.stderr.decode().strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
