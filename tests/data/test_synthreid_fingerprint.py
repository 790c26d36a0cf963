"""SynthReID's pixels under the pinned libraries: the README's SynthReID figures rest on them.

Another OpenCV (or numpy) draws other bytes for the same seed (seen: OpenCV
4.14 against 5.1, a mean of 0.28 grey levels on every image), and every
SynthReID table then moves. This test fails when that happens, so that an
upgrade of constraints.txt is a decision: take the new fingerprints it names,
and re-measure the README's SynthReID figures in the same change.
"""

import hashlib
import os

import pytest

from keras_reid.data import synthreid as synthetic
from keras_reid.data.synthreid import generation
from keras_reid.environment import renderer_versions

# Every preset, 4 identities, seed 0, 128x64, one worker: the SHA-256 of the
# images (relative path and bytes, sorted by path), under constraints.txt's
# opencv-python-headless 5.1.0.95 and numpy 2.4.6.
FINGERPRINTS = {
    "synth-a": "f449a8c18bfc4143d7515afb8cbd98d437e17887b84abeaae86454a041ec0d54",
    "synth-b": "8a1333f0da191900c5af4e85e37dce9c856bfee905e94240453f6ce3fd4db5ec",
    "synth-c": "e32635867cb01a606bd8fd7ca32544017d11b5612fcfe53dd941d12f84114fc1",
    "synth-d": "92145f4a50c217bd7cd1dd5e81b6bc72e1440d051760451dd0f1f305bddf48a8",
}


def images_sha256(root):
    digest = hashlib.sha256()
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            if name == synthetic.META_FILE:
                continue
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as file:
                digest.update(file.read())
    return digest.hexdigest()


@pytest.mark.parametrize("preset", sorted(FINGERPRINTS))
def test_the_renderer_draws_the_pixels_behind_the_readme(preset, tmp_path):
    root = synthetic.generate(preset, tmp_path / preset, seed=0, ids=4, workers=1)
    found = images_sha256(root)
    assert found == FINGERPRINTS[preset], (
        f"SynthReID {preset} renders other images under {renderer_versions()} "
        f"(fingerprint {found}): the README's SynthReID figures no longer reproduce. "
        "If this upgrade is wanted, set FINGERPRINTS to the new values and re-measure "
        "the README's figures in the same change; otherwise install with -c constraints.txt."
    )


def test_the_cache_is_keyed_by_the_renderer_versions(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_REID_HOME", str(tmp_path))
    pinned = synthetic.cache_root("synth-a", ids=4)
    synthetic.load_synthreid("synth-a", ids=4)
    assert os.path.isfile(os.path.join(pinned, synthetic.META_FILE))

    # Under another OpenCV the same preset, seed, ids and size is another
    # folder: generated anew, never the images the pinned OpenCV drew.
    other = {**renderer_versions(), "opencv": "4.14.0.0"}
    monkeypatch.setattr(generation, "renderer_versions", lambda: other)
    moved = synthetic.cache_root("synth-a", ids=4)
    assert moved != pinned and "opencv-4.14.0.0" in moved
    assert not os.path.exists(moved)
    dataset = synthetic.load_synthreid("synth-a", ids=4)
    assert dataset.train.path.str.startswith(moved + os.sep).all()
    assert synthetic.read_meta(moved)["renderer"]["opencv"] == "4.14.0.0"
