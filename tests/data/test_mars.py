import os

import numpy as np
import pytest
from scipy.io import savemat

from keras_reid.data import VIDEO_COLUMNS, load_dataset
from keras_reid.errors import ReIDError

from .fixtures import make_mars, mars_name, write_image


def test_official_info_files(tmp_path):
    mars = load_dataset("mars", make_mars(tmp_path))
    assert list(mars.train.columns) == VIDEO_COLUMNS
    # Train: 0001 C1 (3 frames), 0001 C2 (2), 0003 C4 (2).
    assert mars.train.tracklet.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert mars.train.pid.tolist() == [1] * 5 + [3] * 2
    assert mars.train.camid.tolist() == [0, 0, 0, 1, 1, 3, 3]
    assert mars.train.frame.tolist() == [1, 2, 3, 1, 2, 1, 2]
    assert mars.train.path[5] == str(tmp_path / "bbox_train" / "0003" / "0003C4T0003F001.jpg")
    # query_IDX 2, 3: the test tracks 0002 C1 T2 (3 frames) and 0002 C3 T1 (2 frames).
    assert mars.query.tracklet.tolist() == [1, 1, 1, 2, 2]
    assert mars.query.camid.tolist() == [0, 0, 0, 2, 2]
    # The gallery is every test track, queries, distractors (0) and junk (-1) included.
    assert len(mars.gallery) == 12 and mars.gallery.tracklet.nunique() == 6
    assert sorted(set(mars.gallery.pid)) == [-1, 0, 2, 5]
    assert all(os.path.isfile(p) for p in mars.gallery.path)


def test_derived_split_without_info(tmp_path):
    mars = load_dataset("mars", make_mars(tmp_path, info=False))
    assert len(mars.train) == 7 and mars.train.tracklet.nunique() == 3
    # One query per (id, camera) for ids seen by two cameras: 0002's lowest tracklet
    # in C1 (T0001, 2 frames) and in C3 (T0001, 2 frames); 0005 has one camera only.
    names = mars.query.path.map(os.path.basename).tolist()
    assert names == [mars_name("0002", 1, 1, f) for f in (1, 2)] + [
        mars_name("0002", 3, 1, f) for f in (1, 2)
    ]
    assert mars.query.tracklet.nunique() == 2
    assert len(mars.gallery) == 12 and mars.gallery.tracklet.nunique() == 6
    query_tracks = set(mars.query.tracklet)
    in_gallery = mars.gallery[mars.gallery.tracklet.isin(query_tracks)]
    assert in_gallery.path.tolist() == mars.query.path.tolist()


def test_tracklets_are_unique_per_id_camera_and_number(tmp_path):
    mars = load_dataset("mars", make_mars(tmp_path, info=False))
    keys = mars.gallery.path.map(lambda p: os.path.basename(p)[:11])  # 0002C1T0001
    assert keys.groupby(mars.gallery.tracklet).nunique().eq(1).all()
    assert mars.gallery.groupby(keys).tracklet.nunique().eq(1).all()


def test_info_errors(tmp_path):
    make_mars(tmp_path)
    tracks = np.array([[1, 3, 1, 1], [4, 5, 1, 2], [6, 7, 1, 4]], dtype=np.float64)
    savemat(tmp_path / "info" / "tracks_train_info.mat", {"track_train_info": tracks})
    with pytest.raises(ReIDError, match="row 3 of tracks_train_info.mat says pid 1, camera 4"):
        load_dataset("mars", tmp_path)
    tracks[2, 1] = 8
    savemat(tmp_path / "info" / "tracks_train_info.mat", {"track_train_info": tracks})
    with pytest.raises(ReIDError, match="frames 6-8, does not fit the 7 names"):
        load_dataset("mars", tmp_path)
    os.remove(tmp_path / "info" / "query_IDX.mat")
    with pytest.raises(ReIDError, match="info lacks query_IDX.mat"):
        load_dataset("mars", tmp_path)


def test_folder_errors(tmp_path):
    make_mars(tmp_path, info=False)
    write_image(tmp_path / "bbox_test" / "0005" / mars_name("0006", 1, 1, 1))
    with pytest.raises(ReIDError, match="0006C1T0001F001.jpg is named for id 0006, not 0005"):
        load_dataset("mars", tmp_path)
    os.remove(tmp_path / "bbox_test" / "0005" / mars_name("0006", 1, 1, 1))
    os.makedirs(tmp_path / "bbox_test" / "person5")
    with pytest.raises(ReIDError, match="folder 'person5' in .*bbox_test is not a 4-digit"):
        load_dataset("mars", tmp_path)
    with pytest.raises(ReIDError, match="no folder 'bbox_train'"):
        load_dataset("mars", tmp_path / "bbox_test")
