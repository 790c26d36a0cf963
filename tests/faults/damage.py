"""Damaged image files of every kind a dataset folder can hold, and the reason each should get.

``DAMAGE`` maps a kind to the reason :func:`keras_reid.data.images.find_unreadable`
must give. :func:`damage` writes one file of a kind at a path (a path that a
dataset parser lists, such as ``query/0001_c1s1_000001_00.jpg``).

A file nobody may read (``chmod 000``) is readable by root, which holds
CAP_DAC_OVERRIDE: :func:`unprivileged` is the command prefix that drops that
capability (``setpriv``), so that a subprocess meets the ``permission denied``
a user would.

:func:`damage_file` damages any existing file (a run's backup, model or log)
as a disk fault or an interrupted copy would: ``FILE_DAMAGE`` lists the kinds.
"""

import os
import shutil
import subprocess
import sys

import cv2
import numpy as np

DAMAGE = {
    "truncated_jpeg": "truncated JPEG",
    "truncated_png": "truncated PNG",
    # libjpeg writes its own unprefixed line for these ("Improper call to JPEG
    # library in state 201", "Bogus Huffman table definition").
    "jpeg_header_only": "truncated JPEG",
    "corrupt_jpeg": "damaged JPEG",
    "empty": "empty file",
    "text": "not an image",
    "missing": "not found",
    "broken_symlink": "broken symlink",
    "symlink_loop": "symlink loop",
    "folder": "a folder",
    "no_permission": "permission denied",
}


FILE_DAMAGE = ("truncated", "empty", "bit_flipped")


def damage_file(path, kind):
    """Damage the existing file ``path``: cut to half its size, emptied, or one bit flipped.

    The flipped bit is in the middle byte, inside the data of a zip archive's
    member (a ``.npz`` or ``.keras`` file), where only its CRC tells.
    """
    data = bytearray(open(path, "rb").read())
    if kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "empty":
        data = bytearray()
    elif kind == "bit_flipped":
        data[len(data) // 2] ^= 0x10
    else:
        raise ValueError(f"unknown damage kind {kind!r}; expected one of {', '.join(FILE_DAMAGE)}")
    _write(path, bytes(data))


def _encoded(extension):
    rgb = np.random.default_rng(0).integers(0, 256, (64, 32, 3), dtype=np.uint8)
    ok, data = cv2.imencode(extension, rgb)
    assert ok
    return data.tobytes()


def damage(path, kind):
    """Write a damaged file of ``kind`` (a key of ``DAMAGE``) at ``path``; returns str(path).

    "missing" writes nothing (the caller lists the path in a table); the other
    kinds leave an entry that ``os.listdir`` shows.
    """
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "truncated_jpeg":
        data = _encoded(".jpg")
        _write(path, data[: len(data) // 2])
    elif kind == "jpeg_header_only":
        _write(path, _encoded(".jpg")[:10])
    elif kind == "corrupt_jpeg":
        data = bytearray(_encoded(".jpg"))
        data[200:400] = b"U" * 200  # over the Huffman tables
        _write(path, bytes(data))
    elif kind == "truncated_png":
        data = _encoded(".png")
        _write(path, data[: len(data) // 2])
    elif kind == "empty":
        _write(path, b"")
    elif kind == "text":
        _write(path, b"this is a text file renamed to .jpg\n" * 4)
    elif kind == "missing":
        pass
    elif kind == "broken_symlink":
        os.symlink(path + ".gone", path)
    elif kind == "symlink_loop":
        # The other end is a hidden file, which dataset parsers do not list.
        other = os.path.join(os.path.dirname(path), "." + os.path.basename(path))
        os.symlink(other, path)
        os.symlink(path, other)
    elif kind == "folder":
        os.makedirs(path)
    elif kind == "no_permission":
        _write(path, _encoded(".jpg"))
        os.chmod(path, 0)
    else:
        raise ValueError(f"unknown damage kind {kind!r}; expected one of {', '.join(DAMAGE)}")
    return path


def _write(path, data):
    with open(path, "wb") as file:
        file.write(data)


def unprivileged(probe):
    """The command prefix under which ``probe`` (a chmod 000 file) cannot be read, or None.

    [] for a user other than root; for root, ``setpriv`` without
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (root keeps its uid, so the
    virtualenv under /root stays usable); None when neither works here.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    check = "import sys\ntry:\n open(sys.argv[1], 'rb')\nexcept PermissionError:\n sys.exit(7)"
    result = subprocess.run([*prefix, sys.executable, "-c", check, str(probe)], check=False)
    return prefix if result.returncode == 7 else None
