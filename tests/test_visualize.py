"""``keras-reid attention``: a self-attention model's maps drawn over images, as PNGs."""

import glob
import os

import cv2
import numpy as np
import pytest
from console import run
from helpers import set_bn_statistics

from keras_reid.data.images import load_image
from keras_reid.models import build_model

SIZE = (64, 32)


@pytest.fixture(scope="module")
def sal_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attention")
    model = build_model(
        "sal",
        backbone="mobilenet",
        input_shape=(*SIZE, 3),
        feature_dim=16,
        backbone_options={"alpha": 0.25},
    )
    x = np.random.default_rng(0).uniform(0, 255, (8, *SIZE, 3)).astype("float32")
    set_bn_statistics(model, x)
    model.save(folder / "sal.keras")
    return folder / "sal.keras", model


def query_images(tiny_synth, count):
    return sorted(glob.glob(os.path.join(tiny_synth["synth-a"], "query", "*.jpg")))[:count]


def test_each_image_gets_its_maps_drawn_where_they_are(sal_file, tiny_synth, tmp_path):
    path, model = sal_file
    images = query_images(tiny_synth, 2)
    # An image of another size and name clash: resized, and numbered.
    odd = tmp_path / "odd" / os.path.basename(images[0]).replace(".jpg", ".png")
    odd.parent.mkdir()
    cv2.imwrite(str(odd), cv2.imread(images[1])[::2, ::3])
    out = tmp_path / "maps"
    code, stdout, err = run(["attention", path, *images, odd, "--out", out])
    assert code == 0, err
    stems = [os.path.splitext(os.path.basename(p))[0] for p in images]
    assert sorted(os.listdir(out)) == sorted(
        [f"{stems[0]}.png", f"{stems[1]}.png", f"{stems[0]}_2.png"]
    )
    assert "wrote 3 image(s)" in stdout
    strip = cv2.cvtColor(cv2.imread(str(out / f"{stems[0]}.png")), cv2.COLOR_BGR2RGB)
    # The image, then stages 4, 5 and 6: panels 256 high, 128 wide, 4-pixel gaps.
    assert strip.shape == (256, 128 + 3 * (4 + 128), 3)
    image = load_image(images[0], SIZE).numpy()
    base = cv2.resize(image, (128, 256), interpolation=cv2.INTER_LINEAR).astype(float)
    assert np.abs(strip[:, :128].astype(float) - base).mean() < 2.0
    # Each level: at every cell's centre the colour reads back (through the jet
    # colour map) as the cell's value over the map's maximum.
    maps = np.asarray(model.predict(image[None].astype("float32"), verbose=0)["attention"])[0]
    assert maps.shape == (3, 8, 4)
    jet = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)
    jet = jet[:, 0, ::-1].astype(float)  # RGB of values 0..255
    for level in range(3):
        panel = strip[:, 132 * (level + 1) : 132 * (level + 1) + 128].astype(float)
        heat = 2 * panel - base  # the blended colour map, 50/50 over the image
        for r in range(8):
            for c in range(4):
                colour = heat[32 * r + 16, 32 * c + 16]
                read = np.argmin(np.sum((jet - colour) ** 2, axis=1)) / 255
                expected = maps[level, r, c] / maps[level].max()
                assert abs(read - expected) < 0.06, (level, r, c, read, expected)


def test_an_unreadable_image_writes_nothing(sal_file, tiny_synth, tmp_path):
    path, _ = sal_file
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "maps"
    code, _, err = run(["attention", path, *query_images(tiny_synth, 1), bad, "--out", out])
    assert code == 2
    assert err.count("\n") == 1 and "1 of 2 image(s) cannot be read: " in err, err
    assert "broken.jpg (truncated JPEG); give readable JPEG" in err, err
    assert not out.exists() or os.listdir(out) == []


def test_a_model_without_attention_maps_is_named(tiny_synth, tmp_path):
    model = build_model("msml", backbone="small_convnet", input_shape=(*SIZE, 3), feature_dim=8)
    model.save(tmp_path / "msml.keras")
    code, _, err = run(
        [
            "attention",
            tmp_path / "msml.keras",
            *query_images(tiny_synth, 1),
            "--out",
            tmp_path / "maps",
        ]
    )
    assert code == 2 and err.count("\n") == 1
    assert "msml.keras has no 'attention' output (outputs: embedding)" in err, err
