"""Tiny dataset trees in each parser's exact on-disk layout, built in a test's tmp_path.

Images are small random crops written with OpenCV; ``.mat`` files are written
the way the official releases are: MATLAB v5 files with scipy.io.savemat, and
CUHK03's MATLAB v7.3 ``cuhk-03.mat`` as HDF5 with a MATLAB user block, cells
as datasets of object references into ``#refs#``, and every array stored
transposed (MATLAB is column-major).
"""

import os
import zlib

import cv2
import h5py
import numpy as np
from scipy.io import savemat


def write_image(path, height=8, width=4):
    """A random (height, width, 3) image at ``path``, seeded by the path; returns it as RGB."""
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    return rgb


def write_tree(root, files):
    """Write ``{folder: [names]}`` as images under ``root``; returns root."""
    for folder, names in files.items():
        for name in names:
            write_image(os.path.join(root, folder, name))
    return root


# --- Market-1501 and DukeMTMC-reID ------------------------------------------------

MARKET = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg",
        "0002_c3s1_000551_01.jpg",
        "0007_c6s2_001234_02.jpg",
        "0000_c1s1_000001_00.jpg",  # a distractor in train: skipped
        "-1_c2s1_000002_00.jpg",  # junk in train: skipped
    ],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c4s1_000101_00.jpg"],
    "bounding_box_test": [
        "0001_c2s1_000301_01.jpg",
        "0003_c5s1_000201_01.jpg",
        "-1_c1s1_000401_03.jpg",
        "0000_c3s1_000501_04.jpg",
    ],
}

DUKE = {
    "bounding_box_train": ["0002_c1_f0044158.jpg", "0002_c2_f0044200.jpg", "0005_c8_f0000123.jpg"],
    "query": ["0011_c3_f0046985.jpg"],
    "bounding_box_test": ["0011_c7_f0044112.jpg", "0012_c5_f0001111.jpg"],
}


# --- CUHK03 ---------------------------------------------------------------------------

# Ids per camera pair (the real release has 843, 440, 77, 58, 49).
CUHK03_IDS = (3, 2, 1, 1, 1)
# (variant, campair, pid) -> 1-based image indices whose cell is empty.
CUHK03_EMPTY = {("labeled", 1, 2): (4, 5, 10), ("detected", 3, 1): (9,)}
# The 20 classic test sets, [campair, pid] (1-based), two ids each (the real ones have 100).
CUHK03_TESTSETS = [
    [(1, 1 + k % 3), (2 + k % 4, 1)] if k % 4 else [(1, 3), (2, 2)] for k in range(20)
]
# New protocol: the test ids; query = images 01 and 06 of each (one per camera).
CUHK03_NEW_TEST = ((1, 3), (2, 2), (4, 1), (5, 1))

MAT73_HEADER = (
    "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  5 10:00:00 2015 "
    "HDF5 schema 1.00 ."
)


class _Refs:
    """Writes datasets into ``#refs#`` the way MATLAB does, returning object references."""

    def __init__(self, h5):
        self.group = h5.create_group("#refs#")
        self.count = 0

    def add(self, data, matlab_class, empty=False):
        self.count += 1
        dataset = self.group.create_dataset(f"r{self.count}", data=data)
        dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
        if empty:
            dataset.attrs["MATLAB_empty"] = np.uint8(1)
        return dataset.ref


def _cell(h5, name, refs, shape):
    """A MATLAB cell of ``shape`` (MATLAB order) from a flat column-major list of refs."""
    data = np.empty(shape[::-1], dtype=h5py.ref_dtype)
    data[...] = np.array(refs, dtype=object).reshape(shape[::-1])
    dataset = h5.create_dataset(name, data=data)
    dataset.attrs["MATLAB_class"] = np.bytes_("cell")
    return dataset


def cuhk03_images():
    """``{variant: {file name: RGB image}}`` of every non-empty cell of the fixture."""
    images = {}
    for variant in ("labeled", "detected"):
        images[variant] = {}
        for campair, n_ids in enumerate(CUHK03_IDS, start=1):
            for pid in range(1, n_ids + 1):
                for index in range(1, 11):
                    if index in CUHK03_EMPTY.get((variant, campair, pid), ()):
                        continue
                    name = f"{campair}_{pid:03d}_{1 if index <= 5 else 2}_{index:02d}.png"
                    rng = np.random.default_rng(zlib.crc32(f"{variant}/{name}".encode()))
                    # Not square, so a transposed image would have the wrong shape.
                    height, width = 10 + index, 4 + campair
                    images[variant][name] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return images


def make_cuhk03_raw(root, folder=""):
    """``ROOT[/folder]/cuhk-03.mat`` as MATLAB v7.3 writes it; returns the images it holds."""
    images = cuhk03_images()
    path = os.path.join(root, folder, "cuhk-03.mat")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as h5:
        refs = _Refs(h5)
        for variant in ("labeled", "detected"):
            pairs = []
            for campair, n_ids in enumerate(CUHK03_IDS, start=1):
                cells = np.empty((n_ids, 10), dtype=object)
                for pid in range(1, n_ids + 1):
                    for index in range(1, 11):
                        name = f"{campair}_{pid:03d}_{1 if index <= 5 else 2}_{index:02d}.png"
                        if name in images[variant]:
                            # MATLAB's H x W x 3 is h5py's 3 x W x H.
                            ref = refs.add(images[variant][name].T, "uint8")
                        else:
                            ref = refs.add(np.zeros(2, np.uint64), "double", empty=True)
                        cells[pid - 1, index - 1] = ref
                # An (ids x 10) MATLAB cell is stored as a (10, ids) dataset of refs.
                pair = refs.group.create_dataset(
                    f"pair_{variant}_{campair}", data=cells.T.astype(h5py.ref_dtype)
                )
                pair.attrs["MATLAB_class"] = np.bytes_("cell")
                pairs.append(pair.ref)
            _cell(h5, variant, pairs, (5, 1))
        tests = [refs.add(np.array(t, dtype=np.float64).T, "double") for t in CUHK03_TESTSETS]
        _cell(h5, "testsets", tests, (20, 1))
    header = MAT73_HEADER.ljust(116).encode() + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as handle:
        handle.write(header)
    return images


def make_cuhk03_config(root, variant, names):
    """``cuhk03_new_protocol_config_{variant}.mat`` over ``names`` (MATLAB v5, 1-based)."""
    names = sorted(names)
    test = {f"{c}_{p:03d}" for c, p in CUHK03_NEW_TEST}
    first = {
        f"{c}_{p:03d}_{cam}_{i:02d}.png" for c, p in CUHK03_NEW_TEST for cam, i in ((1, 1), (2, 6))
    }
    rows = {"train_idx": [], "query_idx": [], "gallery_idx": []}
    for row, name in enumerate(names, start=1):
        if name[:5] not in test:
            rows["train_idx"].append(row)
        elif name in first:
            rows["query_idx"].append(row)
        else:
            rows["gallery_idx"].append(row)
    filelist = np.empty((len(names), 1), dtype=object)
    filelist[:, 0] = names
    identities = sorted({n[:5] for n in names})
    savemat(
        os.path.join(root, f"cuhk03_new_protocol_config_{variant}.mat"),
        {
            **{k: np.array(v, dtype=np.float64).reshape(-1, 1) for k, v in rows.items()},
            "filelist": filelist,
            "labels": np.array([identities.index(n[:5]) + 1 for n in names], float)[:, None],
            "camId": np.array([int(n.split("_")[2]) for n in names], float)[:, None],
        },
    )


# --- VIPeR, WARD, CUHK-SYSU -------------------------------------------------------------

VIPER_IDS = (0, 2, 5, 7, 11, 13, 20, 21, 30, 42)


def make_viper(root, ids=VIPER_IDS):
    return write_tree(
        root,
        {
            "cam_a": [f"{pid:03d}_{(pid * 45) % 360}.bmp" for pid in ids],
            "cam_b": [f"{pid:03d}_{(pid * 90) % 360}.bmp" for pid in ids],
        },
    )


# pid -> frames seen by each of cameras 1, 2, 3.
WARD_FRAMES = {1: (2, 1, 1), 2: (1, 2, 1), 3: (1, 1, 2), 4: (1, 1, 1), 5: (2, 2, 1), 6: (1, 1, 1)}


def make_ward(root, folders=("camera_1", "camera_2", "camera_3"), id_folders=False):
    files = {}
    for cam, folder in enumerate(folders):
        for pid, counts in WARD_FRAMES.items():
            for frame in range(counts[cam]):
                if id_folders:
                    files.setdefault(f"{folder}/{pid:04d}", []).append(f"{frame:05d}.png")
                else:
                    files.setdefault(folder, []).append(f"{pid:04d}_{frame:05d}.png")
    return write_tree(root, files)


SYSU = ["p1_s1.jpg", "p1_s2_1.jpg", "p5_s3.jpg", "p11422_s16929_2.jpg"]

# The official CUHK-SYSU release in miniature: scenes of SYSU_SCENE_SHAPE (H, W) and boxes
# (x, y, w, h). Training persons: idname -> [(scene, box)].
SYSU_SCENE_SHAPE = (48, 40)
SYSU_TRAIN = {
    "p3": [("s1.jpg", (2, 4, 10, 20)), ("s2.jpg", (20, 10, 12, 30))],
    "p8": [("s2.jpg", (1, 1, 8, 16)), ("s3.jpg", (5, 6, 9, 18))],
}
# Test queries: (idname, query scene, query box, gallery [(scene, box or None)]); None is a
# distractor scene without the person. The real TestG50 lists 50 scenes per query.
SYSU_TEST = [
    (
        "p5",
        "s4.jpg",
        (0, 0, 10, 24),
        [("s5.jpg", (3, 4, 10, 20)), ("s6.jpg", (28, 20, 12, 28)), ("s7.jpg", None)],
    ),
    (
        "p11",
        "s5.jpg",
        (20, 2, 15, 30),
        [("s8.jpg", (6, 8, 10, 22)), ("s4.jpg", None), ("s9.jpg", None)],
    ),
    # s8's box reaches one pixel past the scene's right border.
    (
        "p12",
        "s9.jpg",
        (10, 10, 10, 20),
        [("s6.jpg", (0, 5, 9, 20)), ("s8.jpg", (30, 30, 11, 19)), ("s1.jpg", None)],
    ),
]


def _struct_array(dtype_fields, rows):
    """A 1 x n MATLAB struct array (scipy's structured array of objects) from dicts."""
    array = np.empty((1, len(rows)), dtype=[(f, object) for f in dtype_fields])
    for index, row in enumerate(rows):
        for field in dtype_fields:
            array[0, index][field] = row[field]
    return array


def _appearance(scene, box):
    # An empty idlocate is 1 x 0, as the release stores it (the public loaders unpack
    # ``(box,) = idlocate`` and test ``box.size == 0``).
    idlocate = np.zeros((1, 0)) if box is None else np.array([box], dtype=np.float64)
    return {"imname": np.array([scene]), "idlocate": idlocate, "ishard": np.array([[0.0]])}


def make_cuhk_sysu_release(root, train=SYSU_TRAIN, test=SYSU_TEST, write=("Train", "TestG50")):
    """The release's layout: ``Image/SSM/*.jpg`` and ``annotation/test/train_test/*.mat``.

    The .mat files are MATLAB v5, structured as the public person-search loaders read
    the real ones: ``Train`` a (n x 1) cell of 1 x 1 structs (idname, nAppear, scene),
    ``scene`` a 1 x k struct (imname, idlocate, ishard); ``TestG50`` a 1 x n struct
    (Query: 1 x 1 struct of imname, idlocate, ishard, idname; Gallery: 1 x G struct of
    imname, idlocate, ishard). ``write`` picks which files to write. Returns
    ``{scene name: RGB image}``.
    """
    scenes = {s for person in train.values() for s, _ in person}
    scenes |= {q[1] for q in test} | {s for q in test for s, _ in q[3]}
    images = {
        s: write_image(os.path.join(root, "Image", "SSM", s), *SYSU_SCENE_SHAPE)
        for s in sorted(scenes)
    }
    folder = os.path.join(root, "annotation", "test", "train_test")
    os.makedirs(folder, exist_ok=True)
    if "Train" in write:
        cell = np.empty((len(train), 1), dtype=object)
        for row, (idname, appearances) in enumerate(train.items()):
            scene = _struct_array(
                ("imname", "idlocate", "ishard"), [_appearance(s, b) for s, b in appearances]
            )
            cell[row, 0] = _struct_array(
                ("idname", "nAppear", "scene"),
                [
                    {
                        "idname": np.array([idname]),
                        "nAppear": np.array([[len(appearances)]]),
                        "scene": scene,
                    }
                ],
            )
        savemat(os.path.join(folder, "Train.mat"), {"Train": cell})
    if "TestG50" in write:
        items = []
        for idname, scene, box, gallery in test:
            query = _struct_array(
                ("imname", "idlocate", "ishard", "idname"),
                [{**_appearance(scene, box), "idname": np.array([idname])}],
            )
            entries = _struct_array(
                ("imname", "idlocate", "ishard"), [_appearance(s, b) for s, b in gallery]
            )
            items.append({"Query": query, "Gallery": entries})
        savemat(
            os.path.join(folder, "TestG50.mat"),
            {"TestG50": _struct_array(("Query", "Gallery"), items)},
        )
    return images


# --- MARS -------------------------------------------------------------------------------

# (split folder, pid text, camera, tracklet, frames), in the order of the official name lists.
MARS_TRACKS = [
    ("bbox_train", "0001", 1, 1, 3),
    ("bbox_train", "0001", 2, 1, 2),
    ("bbox_train", "0003", 4, 3, 2),
    ("bbox_test", "0002", 1, 1, 2),
    ("bbox_test", "0002", 1, 2, 3),
    ("bbox_test", "0002", 3, 1, 2),
    ("bbox_test", "0005", 2, 1, 2),
    ("bbox_test", "0000", 1, 1, 1),
    ("bbox_test", "00-1", 2, 1, 2),
]
# 1-based rows of the test tracks used as queries by the official-style fixture.
MARS_QUERY_IDX = (2, 3)


def mars_name(pid, cam, tracklet, frame):
    return f"{pid}C{cam}T{tracklet:04d}F{frame:03d}.jpg"


def make_mars(root, info=True):
    """The MARS tree; with ``info``, the official evaluation files too."""
    names = {"bbox_train": [], "bbox_test": []}
    tracks = {"bbox_train": [], "bbox_test": []}
    for split, pid, cam, tracklet, frames in MARS_TRACKS:
        start = len(names[split]) + 1
        for frame in range(1, frames + 1):
            name = mars_name(pid, cam, tracklet, frame)
            write_image(os.path.join(root, split, pid, name))
            names[split].append(name)
        tracks[split].append([start, len(names[split]), -1 if pid == "00-1" else int(pid), cam])
    if info:
        os.makedirs(os.path.join(root, "info"))
        for split, short in (("bbox_train", "train"), ("bbox_test", "test")):
            with open(os.path.join(root, "info", f"{short}_name.txt"), "w") as handle:
                handle.write("".join(n + "\n" for n in names[split]))
            savemat(
                os.path.join(root, "info", f"tracks_{short}_info.mat"),
                {f"track_{short}_info": np.array(tracks[split], dtype=np.float64)},
            )
        savemat(
            os.path.join(root, "info", "query_IDX.mat"),
            {"query_IDX": np.array([MARS_QUERY_IDX], dtype=np.float64)},
        )
    return root


# --- MSMT17 -----------------------------------------------------------------------------

MSMT17_LISTS = {
    "train": [
        ("0000/0000_000_01_0303morning_0015_0.jpg", 0),
        ("0001/0001_003_15_0303noon_0123_1.jpg", 1),
    ],
    "val": [("0001/0001_004_07_0303noon_0200_0.jpg", 1)],
    "query": [("0000/0000_000_02_0113morning_0001_0.jpg", 0)],
    "gallery": [
        ("0000/0000_001_05_0113noon_0005_0.jpg", 0),
        ("0002/0002_000_14_0302afternoon_0090_2.jpg", 2),
    ],
}


def make_msmt17(root, v2=False):
    train_dir, test_dir = ("mask_train_v2", "mask_test_v2") if v2 else ("train", "test")
    for name, lines in MSMT17_LISTS.items():
        folder = test_dir if name in ("query", "gallery") else train_dir
        for relative, _ in lines:
            write_image(os.path.join(root, folder, relative))
        with open(os.path.join(root, f"list_{name}.txt"), "w") as handle:
            handle.write("".join(f"{relative} {pid}\n" for relative, pid in lines))
    return root
