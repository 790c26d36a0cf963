import pytest

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError

from .fixtures import write_tree

NAMED = {
    "train/alice": ["1.jpg", "2.jpg"],
    "train/bob": ["1.png"],
    "query/carol": ["q.jpg"],
    "gallery/carol": ["g1.jpg", "g2.jpg"],
    "gallery/alice": ["g.jpg"],
}


def test_named_identities_without_cameras(tmp_path):
    data = load_dataset("folder", write_tree(tmp_path, NAMED))
    # Sorted names over all splits: alice 0, bob 1, carol 2.
    assert data.train.pid.tolist() == [0, 0, 1]
    assert data.query.pid.tolist() == [2]
    assert sorted(data.gallery.pid.tolist()) == [0, 2, 2]
    for table in data.splits().values():
        assert set(table.camid) == {-1}
    assert data.train.path[2] == str(tmp_path / "train" / "bob" / "1.png")


def test_integer_identities_and_cameras_in_names(tmp_path):
    tree = {
        "train/0002": ["0002_c1s1_000451_03.jpg", "0002_c3s1_000551_01.jpg"],
        "query/0011": ["img_c2_0001.jpg"],
        "gallery/0011": ["img_c5_0002.jpg"],
        "gallery/-1": ["junk_c1_0003.jpg"],
    }
    data = load_dataset("folder", write_tree(tmp_path, tree))
    assert data.train.pid.tolist() == [2, 2] and data.train.camid.tolist() == [0, 2]
    assert data.query.camid.tolist() == [1]
    assert sorted(zip(data.gallery.pid, data.gallery.camid, strict=True)) == [(-1, 0), (11, 4)]


def test_training_only_folder(tmp_path):
    data = load_dataset(
        "folder", write_tree(tmp_path, {"train/x": ["a.jpg"], "train/y": ["b.jpg"]})
    )
    assert len(data.train) == 2
    assert data.query.empty and data.gallery.empty


def test_folder_errors(tmp_path):
    with pytest.raises(ReIDError, match="no 'train' under .*ROOT/train/\\{identity\\}"):
        load_dataset("folder", tmp_path)
    write_tree(tmp_path, {"train/x": ["a_c1.jpg", "b.jpg"]})
    with pytest.raises(
        ReIDError, match=r"1 image\(s\) name a camera .* and 1 do not, e.g. .*b.jpg"
    ):
        load_dataset("folder", tmp_path)
    write_tree(tmp_path / "loose", {"train": ["a.jpg"]})
    with pytest.raises(ReIDError, match="holds images outside identity folders, e.g. a.jpg"):
        load_dataset("folder", tmp_path / "loose")
    write_tree(tmp_path / "half", {"train/x": ["a.jpg"], "query/x": ["b.jpg"]})
    with pytest.raises(ReIDError, match="has 'query' but no 'gallery'; give both or neither"):
        load_dataset("folder", tmp_path / "half")
    with pytest.raises(ReIDError, match="give either root or csv=PATH"):
        load_dataset("folder")


def _csv(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_csv_per_split(tmp_path):
    write_tree(tmp_path, {"img": ["a.jpg", "b.jpg", "c.jpg"]})
    _csv(tmp_path / "train.csv", ["path,pid,camid", "img/a.jpg,4,0", "img/b.jpg,4,"])
    _csv(tmp_path / "query.csv", ["pid,path", "7,img/c.jpg"])
    _csv(tmp_path / "gallery.csv", ["path,pid", f"{tmp_path / 'img' / 'a.jpg'},7"])
    data = load_dataset("folder", tmp_path)
    assert data.train.pid.tolist() == [4, 4] and data.train.camid.tolist() == [0, -1]
    assert data.query.path.tolist() == [str(tmp_path / "img" / "c.jpg")]
    assert data.query.camid.tolist() == [-1]
    assert data.gallery.path.tolist() == [str(tmp_path / "img" / "a.jpg")]


def test_one_csv_with_split_column(tmp_path):
    write_tree(tmp_path, {"img": ["a.jpg", "b.jpg", "c.jpg"]})
    lines = ["path,pid,camid,split", "img/a.jpg,1,0,train", "img/b.jpg,2,1,query"]
    csv = _csv(tmp_path / "all.csv", lines + ["img/c.jpg,2,0,gallery"])
    data = load_dataset("folder", csv=str(csv))
    assert [len(t) for t in data.splits().values()] == [1, 1, 1]
    assert data.query.camid.tolist() == [1] and data.gallery.pid.tolist() == [2]
    no_split = _csv(tmp_path / "train_only.csv", ["path,pid", "img/a.jpg,1", "img/b.jpg,2"])
    data = load_dataset("folder", csv=str(no_split))
    assert len(data.train) == 2 and data.query.empty


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["path,pid", "img/a.jpg,1", "img/b.jpg,x"], "line 3: pid and camid must be integers"),
        (["path,pid", "img/a.jpg,1", "img/zz.jpg,1"], "line 3: no image .*zz.jpg"),
        (["path,pid", "img/a.jpg,1,5"], "line 2 has not the 2 fields"),
        (["path,pid", "img/a.jpg"], "line 2 has not the 2 fields"),
        (["file,person", "img/a.jpg,1"], "line 1 has columns file,person; expected path,pid"),
        (["path,pid,split", "img/a.jpg,1,test"], "line 2: split must be train, query or gallery"),
    ],
)
def test_bad_csv_lines_name_file_and_line(tmp_path, lines, message):
    write_tree(tmp_path, {"img": ["a.jpg", "b.jpg"]})
    csv = _csv(tmp_path / "data.csv", lines)
    with pytest.raises(ReIDError, match=f"data.csv {message}"):
        load_dataset("folder", csv=str(csv))


def test_split_column_is_not_allowed_in_per_split_csvs(tmp_path):
    write_tree(tmp_path, {"img": ["a.jpg"]})
    _csv(tmp_path / "train.csv", ["path,pid,split", "img/a.jpg,1,train"])
    with pytest.raises(ReIDError, match=r"train.csv line 1 has columns path,pid,split"):
        load_dataset("folder", tmp_path)


def test_csv_with_a_byte_order_mark_and_crlf_as_excel_writes_it(tmp_path):
    write_tree(tmp_path, {"img": ["a.jpg", "é.jpg"]})
    text = "path,pid,camid\r\nimg/a.jpg,1,0\r\nimg/é.jpg,2,1\r\n"
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    data = load_dataset("folder", csv=str(tmp_path / "excel.csv"))
    assert data.train.pid.tolist() == [1, 2] and data.train.camid.tolist() == [0, 1]
    assert data.train.path.iloc[1].endswith("é.jpg")


def test_a_csv_that_is_not_utf8_is_named_with_its_line(tmp_path):
    write_tree(tmp_path, {"img": ["a.jpg"]})
    (tmp_path / "latin1.csv").write_bytes("path,pid\nimg/a.jpg,1\nimg/ü.jpg,2\n".encode("latin-1"))
    with pytest.raises(ReIDError, match=r"latin1.csv is not UTF-8 text \(line 3, byte 0xfc\)"):
        load_dataset("folder", csv=str(tmp_path / "latin1.csv"))
