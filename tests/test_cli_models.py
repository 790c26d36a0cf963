"""keras-reid evaluate and export given models that are not what they should be.

The one-line errors are checked through the installed console script
(concurrently, stderr to a pipe for some and to a file for others), the
rest in-process. The models are tiny: conv, BatchNormalization "bn", pooling
and a Dense layer "embedding", at 32x16.
"""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_reid
from keras_reid.cli import main
from keras_reid.errors import ReIDError

SIZE = (32, 16)
CONSOLE_SCRIPT = Path(sys.executable).parent / "keras-reid"


def network(channels=3, plain=False):
    """The tiny embedding network; ``plain``: its output is the tensor, not a dict."""
    keras.utils.set_random_seed(0)
    images = keras.Input((*SIZE, channels), name="images")
    x = keras.layers.Conv2D(4, 3, strides=2, name="conv")(images)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    embedding = keras.layers.Dense(8, name="embedding")(x)
    return keras.Model(images, embedding if plain else {"embedding": embedding}, name="tiny")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model files: good, nan (a NaN moving variance), plain, grey (1 channel), not models."""
    folder = tmp_path_factory.mktemp("models")
    good = network()
    good.save(folder / "good.keras")
    plain = network(plain=True)
    plain.set_weights(good.get_weights())
    plain.save(folder / "plain.keras")
    # A diverged BatchNorm statistic: the training loss never sees it, inference is all NaN.
    nan = network()
    nan.get_layer("bn").moving_variance.assign(np.full(4, np.nan, "float32"))
    nan.save(folder / "nan.keras")
    network(channels=1).save(folder / "grey.keras")
    (folder / "notes.keras").write_text("these are notes, not a model\n")
    data = (folder / "good.keras").read_bytes()
    (folder / "truncated.keras").write_bytes(data[: len(data) // 2])
    return {"folder": folder, "weights": len(good.weights)}


def console_script(commands, tmp_path):
    """Run ``keras-reid ARGS`` for each ARGS concurrently: [(exit code, stdout, stderr lines)].

    Even-numbered commands write stderr to a pipe, odd-numbered ones to a file.
    """
    processes = []
    for index, args in enumerate(commands):
        log = tmp_path / f"stderr_{index}.txt"
        stream = subprocess.PIPE if index % 2 == 0 else open(log, "w")  # noqa: SIM115
        process = subprocess.Popen(
            [str(CONSOLE_SCRIPT), *args], stdout=subprocess.PIPE, stderr=stream, text=True
        )
        processes.append((process, stream, log))
    results = []
    for process, stream, log in processes:
        out, err = process.communicate(timeout=300)
        if stream is not subprocess.PIPE:
            stream.close()
            err = log.read_text()
        results.append((process.returncode, out, err.strip().splitlines()))
    return results


def test_console_script_refuses_nan_grey_and_non_models_in_one_line(models, tiny_synth, tmp_path):
    folder, weights = models["folder"], models["weights"]
    data = f"market1501:{tiny_synth['synth-b']}"
    nan = (
        f"{folder / 'nan.keras'}: 1 of {weights} weights hold NaN or infinity (e.g. "
        "bn/moving_variance), so every embedding it computes is meaningless: its training "
        "diverged. Re-train with a lower learning rate (schedule.base_lr), or use an earlier "
        "checkpoint (checkpoints/epoch_NNNN.keras in the run folder)."
    )
    out = tmp_path / "saved_models"
    cases = [
        (["export", str(folder / "nan.keras"), "--out", str(out / "nan" / "1")], nan),
        (["evaluate", str(folder / "nan.keras"), "--data", data], nan),
        (
            ["evaluate", str(folder / "good.keras"), "--data", data, "--batch-size", "0"],
            "batch size (--batch-size) must be a positive integer, e.g. 128 (lower it if "
            "memory runs out). Received: batch_size=0",
        ),
        (
            ["evaluate", str(folder / "grey.keras"), "--data", data],
            f"{folder / 'grey.keras'}: model 'tiny' takes 1-channel images (None, 32, "
            "16, 1); keras_reid feeds RGB images [batch, H, W, 3]: build the model with "
            "input_shape=(32, 16, 3) (a grey image is RGB with three equal channels).",
        ),
        (
            ["export", str(folder / "notes.keras"), "--out", str(out / "notes" / "1")],
            f"{folder / 'notes.keras'} exists but is not a Keras model file: a .keras file is "
            "a zip archive and this 29-byte file is not one (a text file, or a truncated copy "
            "or download); pass the model.keras a keras_reid run wrote, or copy it again.",
        ),
    ]
    results = console_script([args for args, _ in cases], tmp_path)
    for (args, message), (code, stdout, stderr) in zip(cases, results, strict=True):
        assert code == 2, (args, stderr)
        assert stderr == [f"keras-reid {args[0]}: error: {message}"], args
        assert stdout == ""
    assert not out.exists()  # nothing half-exported


def test_plain_tensor_embedding_models_evaluate_and_export(models, tiny_synth, capsys):
    """A single output whose layer is named "embedding" scores as the dict-output model does."""
    folder = models["folder"]
    data = f"market1501:{tiny_synth['synth-b']}"
    printed = {}
    for name in ("good", "plain"):
        assert main(["evaluate", str(folder / f"{name}.keras"), "--data", data]) == 0
        printed[name] = capsys.readouterr().out
    assert "rank1" in printed["good"] and "mAP" in printed["good"]
    assert printed["plain"] == printed["good"]
    out = folder / "saved_models" / "plain" / "1"
    assert main(["export", str(folder / "plain.keras"), "--out", str(out)]) == 0
    assert "serving_default: images uint8 [batch, 32, 16, 3] -> embedding float32 [batch, 8]" in (
        capsys.readouterr().out
    )
    assert keras_reid.load_model(folder / "plain.keras").output_names == ["embedding"]


def test_other_bad_models_and_batch_sizes_are_one_line_errors(models, tiny_synth, capsys):
    folder = models["folder"]
    data = f"market1501:{tiny_synth['synth-b']}"
    grey, truncated = folder / "grey.keras", folder / "truncated.keras"
    cases = [
        (["evaluate", str(folder / "good.keras"), "--data", data, "--batch-size", "-3"], "=-3"),
        (["export", str(grey), "--out", str(folder / "x" / "1")], "takes 1-channel images"),
        (["evaluate", str(truncated), "--data", data], "is a zip archive and this"),
        (["export", str(folder / "good.keras"), "--out", str(folder / "x" / "١")], "ASCII"),
    ]
    for args, fragment in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"keras-reid {args[0]}: error: "), err
        assert fragment in err[0]
        assert "File not found" not in err[0]
    assert not (folder / "x").exists()
    for path, fragment in ((grey, "takes 1-channel images"), (folder / "nan.keras", "NaN")):
        with pytest.raises(ReIDError, match=fragment):
            keras_reid.load_model(path)
