"""The versions of the libraries that compute a result.

The same code and seed give other numbers under other library versions:
SynthReID draws other pixels under another OpenCV, and training takes other
steps under other TensorFlow, Keras or numpy numerics. Every results file a
run writes records these versions (``results.csv`` columns, a line under
``results.md``), ``keras-reid --version`` prints them, and the SynthReID
cache is keyed by the renderer's (:func:`renderer_versions`).
constraints.txt pins the versions behind the README's figures.
"""

import argparse
import importlib.metadata
import os
import platform

# The distributions that may provide a module (the first one installed is named).
_DISTRIBUTIONS = {
    "tensorflow": ("tensorflow-cpu", "tensorflow", "tensorflow-intel", "tf-nightly"),
    "opencv": (
        "opencv-python-headless",
        "opencv-python",
        "opencv-contrib-python-headless",
        "opencv-contrib-python",
    ),
}
# Column names of the versions in a results table, in this order. "cpu" is the
# processor and its widest vector instructions: the lock fixes the libraries,
# but TensorFlow's oneDNN and numpy's OpenBLAS choose their kernels by CPU.
VERSION_COLUMNS = ("python", "keras_reid", "tensorflow", "keras", "numpy", "opencv", "cpu")
# Vector instruction sets that select other kernels, widest first.
_VECTOR_FLAGS = ("amx_tile", "avx512f", "avx2", "avx", "sse4_2", "asimd")


def _installed(module, attribute_version):
    """The version of the distribution that provides ``module``, else the module's own."""
    for name in _DISTRIBUTIONS.get(module, (module,)):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return attribute_version()


def cpu_description():
    """The processor's model and its widest vector instruction set, e.g. "AMD EPYC (avx2)".

    Read from /proc/cpuinfo on Linux; elsewhere :func:`platform.processor`.
    """
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown"
    widest = next((flag for flag in _VECTOR_FLAGS if flag in flags), None)
    return f"{model} ({widest})" if widest else model


def onednn_enabled():
    """Whether TensorFlow runs its oneDNN CPU kernels in this process.

    TensorFlow decides by processor unless ``TF_ENABLE_ONEDNN_OPTS`` says (off on
    an AMD EPYC without AVX-512, on on many Intel CPUs); the two give other
    floating-point results, and only oneDNN has a CPU gradient for grouped
    convolutions.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a TensorFlow without it
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


def renderer_versions():
    """The versions that decide SynthReID's pixels: OpenCV (drawing, resizing, JPEG) and numpy.

    The opencv entry is the distribution's full version (e.g. 5.1.0.95): builds of
    one OpenCV version may bundle other JPEG encoders.
    """
    import cv2
    import numpy

    return {
        "opencv": _installed("opencv", lambda: cv2.__version__),
        "numpy": numpy.__version__,
    }


def library_versions():
    """{python, keras_reid, tensorflow, keras, numpy, opencv, cpu: version} of this process.

    Example:
        >>> library_versions()["keras"]
        '3.15.1'
    """
    import keras
    import tensorflow as tf

    import keras_reid

    return {
        "python": platform.python_version(),
        "keras_reid": keras_reid.__version__,
        "tensorflow": _installed("tensorflow", lambda: tf.__version__),
        "keras": keras.__version__,
        **renderer_versions(),
        "cpu": f"{cpu_description()}, oneDNN {'on' if onednn_enabled() else 'off'}",
    }


def versions_line(versions=None):
    """One line naming the versions, for logs, ``--version`` and under markdown tables."""
    versions = versions or library_versions()
    return ", ".join(f"{name.replace('_', '-')} {versions[name]}" for name in VERSION_COLUMNS)


def with_versions(frame):
    """A copy of a results DataFrame with one column per library version, at the end."""
    frame = frame.copy()
    for name, version in library_versions().items():
        frame[name] = version
    return frame[[c for c in frame.columns if c not in VERSION_COLUMNS] + list(VERSION_COLUMNS)]


class PrintVersions(argparse.Action):
    """``keras-reid --version``: :func:`versions_line`, then exit (imports TensorFlow only then)."""

    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        print(versions_line())
        parser.exit()
