"""What importing the package does before anything else."""

import os
import subprocess
import sys


def test_import_without_tensorflow_names_the_extra_to_install():
    # Blocking the module makes `import tensorflow` fail as on a machine without it.
    code = "import sys; sys.modules['tensorflow'] = None; import keras_reid"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: keras_reid needs TensorFlow, which is not installed")
    assert "keras-reid[cpu]" in last


def test_import_selects_the_tensorflow_backend():
    import keras

    import keras_reid  # noqa: F401

    assert keras.backend.backend() == "tensorflow"
