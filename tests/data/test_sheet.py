"""Contact sheets: the grid's pixel size, what lands in each cell, atomic writing."""

import os

import cv2
import numpy as np
import pytest

from keras_reid.data.dataset import make_table
from keras_reid.data.market1501 import read_market_layout
from keras_reid.data.sheet import contact_sheet
from keras_reid.data.synthreid import generate
from keras_reid.errors import ReIDError


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    base = tmp_path_factory.mktemp("sheet")
    return {
        name: read_market_layout(generate(name, base / name, ids=12, size=(64, 32)), name)
        for name in ("synth-a", "synth-c")
    }


def test_sheet_size_follows_the_grid(domains, tmp_path):
    tables = {name: data.train for name, data in domains.items()}
    out = contact_sheet(tables, tmp_path / "sheet.png", ids=3, per_camera=2, thumb=(40, 20))
    # Label column 72 px; 6 cameras (synth-a has the most), each 2 * (20 + 2) + 2 px;
    # per dataset a 16 px header and 3 rows of 40 + 2 px; a 2 px bottom margin.
    assert cv2.imread(out).shape == (2 * (16 + 3 * 42) + 2, 72 + 6 * 46, 3)


def test_a_list_of_tables_and_a_single_dataset_work(domains, tmp_path):
    tables = [data.train for data in domains.values()]
    assert cv2.imread(contact_sheet(tables, tmp_path / "list.png")).shape == (
        2 * (16 + 4 * 66) + 2,
        72 + 6 * 36,
        3,
    )
    single = contact_sheet(domains["synth-c"], tmp_path / "one.png", ids=2)
    assert cv2.imread(single).shape == (16 + 2 * 66 + 2, 72 + 5 * 36, 3)


def solid(path, bgr):
    cv2.imwrite(str(path), np.full((16, 8, 3), bgr, np.uint8))
    return str(path)


def test_cells_hold_each_identity_per_camera(tmp_path):
    # Two ids, two cameras; pid 2 has no image in camera 1: that cell is grey.
    red, green, blue = (0, 0, 255), (0, 255, 0), (255, 0, 0)
    table = make_table(
        [
            (solid(tmp_path / "1a.png", red), 1, 0, "toy"),
            (solid(tmp_path / "1b.png", green), 1, 1, "toy"),
            (solid(tmp_path / "2a.png", blue), 2, 0, "toy"),
        ],
        "toy",
    )
    sheet = cv2.imread(contact_sheet(table, tmp_path / "toy.png", ids=2, thumb=(16, 8)))
    assert sheet.shape == (16 + 2 * 18 + 2, 72 + 2 * 12, 3)

    def cell(row, column):  # the centre pixel of a thumbnail
        return tuple(int(v) for v in sheet[16 + row * 18 + 8, 72 + column * 12 + 2 + 4])

    assert cell(0, 0) == red and cell(0, 1) == green
    assert cell(1, 0) == blue and cell(1, 1) == (215, 215, 215)


def test_no_camera_is_one_column(tmp_path):
    table = make_table(
        [(solid(tmp_path / f"{i}.png", (9 * i, 0, 0)), 1 + i % 3, -1, "toy") for i in range(6)],
        "toy",
    )
    out = contact_sheet(table, tmp_path / "nocam.png", ids=2)
    assert cv2.imread(out).shape == (16 + 2 * 66 + 2, 72 + 36, 3)


def test_written_atomically_and_replaced(domains, tmp_path):
    out = tmp_path / "nested" / "sheet.png"
    contact_sheet(domains["synth-a"].train, out, ids=1)
    first = out.read_bytes()
    contact_sheet(domains["synth-a"].train, out, ids=2)
    assert out.read_bytes() != first
    assert os.listdir(out.parent) == ["sheet.png"]


def test_bad_input_is_named(domains, tmp_path):
    with pytest.raises(ReIDError, match="no identity"):
        contact_sheet(domains["synth-a"].gallery.query("pid == 0"), tmp_path / "x.png")
    with pytest.raises(ReIDError, match="ids=0"):
        contact_sheet(domains["synth-a"].train, tmp_path / "x.png", ids=0)
    with pytest.raises(ReIDError, match="lacks column"):
        contact_sheet(domains["synth-a"].train.drop(columns="camid"), tmp_path / "x.png")
    assert not os.path.exists(tmp_path / "x.png")
