import pytest

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError

from .fixtures import SYSU, write_tree


def test_crops_train_only_without_cameras(tmp_path):
    sysu = load_dataset("cuhk_sysu", write_tree(tmp_path, {"cropped_images": SYSU}))
    assert sorted(sysu.train.pid.tolist()) == [1, 1, 5, 11422]
    assert set(sysu.train.camid) == {-1}
    assert sysu.query.empty and sysu.gallery.empty
    assert list(sysu.query.columns) == list(sysu.train.columns)


def test_errors(tmp_path):
    with pytest.raises(ReIDError, match="no folder 'cropped_images' .*p\\{pid\\}_s\\{scene\\}"):
        load_dataset("cuhk_sysu", write_tree(tmp_path, {"Image/SSM": ["s1.jpg"]}))
    write_tree(tmp_path, {"cropped_images": SYSU + ["s1.jpg"]})
    with pytest.raises(ReIDError, match=r"1 file name\(s\) .* e.g. s1.jpg"):
        load_dataset("cuhk_sysu", tmp_path)
