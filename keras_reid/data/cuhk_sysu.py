"""CUHK-SYSU person crops (Xiao et al., CVPR 2017), with a re-ID test protocol.

Xiao, Li, Wang, Lin & Wang, "Joint Detection and Identification Feature
Learning for Person Search", CVPR 2017 (and "End-to-End Deep Learning for
Person Search", arXiv:1604.01850, 2016). Scenes come from street photos and
films, not from a camera network, so camid is -1 (unknown) everywhere.

Two layouts are accepted. When ``ROOT/annotation/`` is there, the official
release is read and all three splits are built; otherwise the torchreid
crops train, as before.

1. The official release (``annotation/`` wins when both layouts are there)::

       ROOT/Image/SSM/s16929.jpg                        the scenes
       ROOT/annotation/test/train_test/Train.mat        the 5,532 training persons
       ROOT/annotation/test/train_test/TestG50.mat      the 2,900 test queries

   ``Train.mat``: ``Train``, a cell (5532 x 1) of 1 x 1 structs with fields
   ``idname`` ('p11422'), ``nAppear`` and ``scene``, a 1 x n struct with
   ``imname`` ('s16929.jpg'), ``idlocate`` (x, y, w, h) and ``ishard``.
   ``TestG50.mat``: ``TestG50``, a 1 x 2900 struct with fields ``Query`` (1 x 1:
   ``imname``, ``idlocate``, ``ishard``, ``idname``) and ``Gallery`` (1 x 50:
   ``imname``, ``idlocate``, ``ishard``; ``idlocate`` is empty for a scene
   without the query person). These structures are those read by the public
   person-search loaders (OIM's ``psdb.py``, dgyxiao/person_search, and its
   descendants, e.g. serend1p1ty/SeqNet ``datasets/cuhk_sysu.py``).
   ``Images.mat``, ``Person.mat`` and ``pool.mat`` are not needed.

   On first use every box of the protocol is cropped from its scene ONCE into
   ``ROOT/reid_crops/{train,query,gallery}/p{pid}_{scene}_{x}_{y}_{w}_{h}.png``
   (lossless), through a hidden temporary folder renamed into place, so an
   interrupted extraction never leaves a half-filled cache; delete the folder
   to extract again. Once it exists the scenes are not read.

   pid is the number of ``idname`` (p11422 -> 11422).

   * train: every box of the 5,532 ``Train.mat`` persons (the paper's
     training set, 11,206 scenes).
   * query: the 2,900 query boxes, one per test person.
   * gallery: every box of a test person in the gallery scenes of its own
     query (the entries of ``Gallery`` whose ``idlocate`` is not empty), i.e.
     every appearance of the 2,900 test persons except the query boxes.

   How this differs from the person-search protocol. There, each query has
   its own gallery of G scenes (G = 50, 100, ... 4000; the ``TestG{G}.mat``
   files): all scenes with the person plus distractor scenes, and the
   detector's boxes in them are ranked. Here there is no detection (the
   annotated boxes are the crops), and the library ranks every query against
   ONE gallery table, so a per-query gallery cannot be expressed; the closest
   single gallery is the union of the queries' true matches. Each query is
   therefore ranked against the other 2,899 persons' crops (labelled
   pedestrians, all of them negatives), not against the few boxes of its G
   scenes. Distractor scenes contribute no
   crop: their labelled people are in the union already when they are test
   persons, and their unlabelled pedestrians (no identity, many tiny or
   zero-size boxes in ``Images.mat``) are left out, as in the torchreid crops.
   Because every ``TestG{G}`` gallery holds ALL the scenes of its query person
   (the protocol of Xiao et al.; G only adds distractor scenes), the union is
   the same for every G: ``TestG50.mat`` (the smallest) is read and no
   gallery-size option is offered, since it would change nothing. Scores are
   thus not comparable with person-search tables at a given G. The MSML paper
   (Xiao et al., 2017, Sec. 4.1) tests on these 2,900 persons on crops but does
   not state its gallery; its Table 5 compares with person-search results.

   Evaluation: with camid -1 no gallery crop counts as "same camera", so
   nothing is ignored for the camera (see :mod:`keras_reid.evaluation.metrics.ranking`):
   the positives of a query are all the gallery crops of its pid; the query's
   own box is never in the gallery.

2. The torchreid crops (training only)::

       ROOT/cropped_images/p11422_s16929.jpg        pid 11422 from scene s16929
       ROOT/cropped_images/p11422_s16929_1.jpg      (an optional crop index)

   torchreid's ``cropped_images`` (11,934 ids, 34,574 crops) holds more
   identities than the protocol's train and test persons together (8,432),
   and its names do not say which split a person belongs to: all crops
   train; query and gallery are empty. Do not score on the release's test
   persons after training on it.
"""

import logging
import os
import re
import shutil
from collections import defaultdict

import cv2
import numpy as np

from keras_reid.data.dataset import (
    ReIDDataset,
    list_images,
    make_table,
    parse_folder,
    read_mat,
    register_dataset,
    require_dir,
)
from keras_reid.errors import ReIDError
from keras_reid.fileio import install_folder, remove_stale_temporaries, temporary_folder

logger = logging.getLogger("keras_reid.data")

PATTERN = re.compile(r"p(\d+)_s(\d+)(?:_\d+)?\.(jpg|jpeg|png)", re.IGNORECASE)
IDNAME = re.compile(r"p(\d+)")
LAYOUT = "ROOT/cropped_images/p{pid}_s{scene}[_{index}].jpg"
SCENES = os.path.join("Image", "SSM")
PROTOCOL = os.path.join("annotation", "test", "train_test")
TRAIN_MAT, TEST_MAT = "Train", "TestG50"
CROPS = "reid_crops"
SPLITS = ("train", "query", "gallery")
RELEASE_LAYOUT = (
    f"ROOT/{SCENES}/*.jpg and ROOT/{PROTOCOL}/{TRAIN_MAT}.mat, {TEST_MAT}.mat, "
    "as in the official release"
)


@register_dataset("cuhk_sysu")
def cuhk_sysu(root):
    """CUHK-SYSU: the release's protocol, or torchreid crops for training only.

    See the module docstring for the two layouts, how the test protocol is
    built from the release's annotation and how it differs from person search.

    Args:
        root: the folder of the official release (``Image/``, ``annotation/``)
            or of torchreid's ``cropped_images/``.

    Example:
        >>> sysu = load_dataset("cuhk_sysu", "/data/cuhk_sysu")
        >>> len(sysu.query), sysu.query.camid.unique()
        (2900, array([-1]))
    """
    root = require_dir(root, "", "cuhk_sysu", f"{RELEASE_LAYOUT}, or {LAYOUT}")
    if os.path.isdir(os.path.join(root, "annotation")):
        tables = _release_tables(root)
        return ReIDDataset(
            name="cuhk_sysu", **{k: make_table(v, "cuhk_sysu") for k, v in tables.items()}
        )
    if not os.path.isdir(os.path.join(root, "cropped_images")):
        raise ReIDError(
            f"cuhk_sysu: neither 'annotation' nor 'cropped_images' under {root} "
            f"(expected {RELEASE_LAYOUT}, or {LAYOUT})."
        )
    folder = os.path.join(root, "cropped_images")
    records = parse_folder(
        folder,
        PATTERN,
        lambda match, path: {"path": path, "pid": int(match.group(1)), "camid": -1},
        "cuhk_sysu",
        "cropped_images",
    )
    return ReIDDataset(
        name="cuhk_sysu",
        train=make_table(records, "cuhk_sysu"),
        query=make_table([], "cuhk_sysu"),
        gallery=make_table([], "cuhk_sysu"),
    )


# --- reading the release's .mat files -----------------------------------------------------


class _Malformed(Exception):
    """A .mat value without the release's structure; turned into a ReIDError by the caller."""


def _structs(value, fields):
    """The records of a MATLAB struct array (or of a cell holding one) with ``fields``."""
    value = np.asarray(value)
    if value.dtype == object and value.size == 1:  # a cell element holding the struct
        value = np.asarray(value.ravel()[0])
    names = value.dtype.names or ()
    missing = [f for f in fields if f not in names]
    if missing:
        raise _Malformed(f"a struct with field(s) {', '.join(fields)} (no {', '.join(missing)})")
    return value.ravel()


def _text(value, what):
    value = np.asarray(value).ravel()
    if value.size != 1 or value.dtype.kind != "U":
        raise _Malformed(f"{what} as text")
    return str(value[0])


def _box(value):
    """(x, y, w, h) as ints, or None for an empty ``idlocate`` (a scene without the person)."""
    box = np.asarray(value)
    if box.size == 0:
        return None
    if box.dtype.kind not in "iuf" or box.size != 4 or not np.all(np.isfinite(box)):
        raise _Malformed("idlocate as 4 numbers (x, y, w, h)")
    # Truncated like the public loaders do (the release's boxes are whole pixels).
    return tuple(int(v) for v in box.ravel())


def _scene(value):
    name = _text(value, "imname")
    if not name or os.path.basename(name) != name or name.startswith("."):
        raise _Malformed(f"imname as a scene file name such as s1.jpg (got {name!r})")
    return name


def _pid(idname):
    match = IDNAME.fullmatch(idname)
    if match is None:
        raise _Malformed(f"idname as p<number> (got {idname!r})")
    return int(match.group(1))


def _read(root, variable, parse):
    path = os.path.join(root, PROTOCOL, f"{variable}.mat")
    content = read_mat(path, "cuhk_sysu", [variable])[variable]
    try:
        return parse(content)
    except _Malformed as error:
        raise ReIDError(
            f"cuhk_sysu: {variable} in {path} is not the release's structure: expected "
            f"{error}; use the file of the official release."
        ) from None


def _train_boxes(content):
    """[(pid, scene, box)] of every training person's appearances."""
    boxes = []
    for person in np.asarray(content).ravel():
        records = _structs(person, ("idname", "scene"))
        if records.size != 1:
            raise _Malformed("a cell of 1 x 1 structs (idname, nAppear, scene)")
        record = records[0]
        pid = _pid(_text(record["idname"], "idname"))
        for scene in _structs(record["scene"], ("imname", "idlocate")):
            box = _box(scene["idlocate"])
            if box is None:
                raise _Malformed("a box for every training appearance (one is empty)")
            boxes.append((pid, _scene(scene["imname"]), box))
    return boxes


def _test_boxes(content):
    """([(pid, scene, box)] of the queries, [(pid, scene, box)] of their gallery matches)."""
    queries, matches = [], []
    for item in _structs(content, ("Query", "Gallery")):
        query = _structs(item["Query"], ("imname", "idlocate", "idname"))
        if query.size != 1:
            raise _Malformed("one Query struct per item")
        query = query[0]
        pid = _pid(_text(query["idname"], "idname"))
        box = _box(query["idlocate"])
        if box is None:
            raise _Malformed("a box for every query (one is empty)")
        queries.append((pid, _scene(query["imname"]), box))
        for entry in _structs(item["Gallery"], ("imname", "idlocate")):
            box = _box(entry["idlocate"])
            if box is not None:  # a scene with the query person; the others are distractors
                matches.append((pid, _scene(entry["imname"]), box))
    return queries, matches


def _crop_name(pid, scene, box):
    return f"p{pid}_{os.path.splitext(scene)[0]}_{'_'.join(str(v) for v in box)}.png"


def _protocol(root):
    """``{split: [(pid, scene, box)]}`` from the release's annotation."""
    train = _read(root, TRAIN_MAT, _train_boxes)
    queries, matches = _read(root, TEST_MAT, _test_boxes)
    shared = sorted({p for p, _, _ in train} & {p for p, _, _ in queries})
    if shared:
        raise ReIDError(
            f"cuhk_sysu: {len(shared)} person(s) are both in {TRAIN_MAT}.mat and {TEST_MAT}.mat, "
            f"e.g. p{shared[0]}; the release's train and test persons are disjoint: use its files."
        )
    # The query's own box is never a gallery item (camid -1 would let it match itself).
    query_keys = set(queries)
    gallery = list(dict.fromkeys(m for m in matches if m not in query_keys))
    return {"train": list(dict.fromkeys(train)), "query": queries, "gallery": gallery}


# --- cropping once ---------------------------------------------------------------------------


def _release_tables(root):
    protocol = _protocol(root)
    crops = extract_crops(root, protocol)
    tables = {}
    for split in SPLITS:
        folder = os.path.join(crops, split)
        tables[split] = [
            {"path": os.path.join(folder, _crop_name(*item)), "pid": item[0], "camid": -1}
            for item in protocol[split]
        ]
    return tables


def extract_crops(root, protocol):
    """``ROOT/reid_crops``, cropped from the scenes unless it exists already.

    Args:
        root: the release's folder.
        protocol: ``{split: [(pid, scene, (x, y, w, h))]}`` (see :func:`cuhk_sysu`).

    Returns:
        the crops' folder, holding ``train/``, ``query/`` and ``gallery/``.

    Raises:
        ReIDError: a scene is missing or unreadable, a box lies outside its
            scene, or an existing crops folder lacks some crops.
    """
    target = os.path.join(root, CROPS)
    if os.path.isdir(target):
        _check_crops(target, protocol)
        return target
    scenes_dir = require_dir(root, SCENES, "cuhk_sysu", RELEASE_LAYOUT)
    by_scene = defaultdict(list)
    for split in SPLITS:
        for pid, scene, box in protocol[split]:
            by_scene[scene].append((split, pid, box))
    missing = sorted(s for s in by_scene if not os.path.isfile(os.path.join(scenes_dir, s)))
    if missing:
        raise ReIDError(
            f"cuhk_sysu: {len(missing)} scene image(s) of the annotation are not in "
            f"{scenes_dir}, e.g. {', '.join(missing[:3])}; extract the whole release there."
        )
    remove_stale_temporaries(root, CROPS, recursive=False)
    logger.info("cuhk_sysu: cropping %d scenes to %s (once)", len(by_scene), target)
    scratch = temporary_folder(target)
    try:
        for split in SPLITS:
            os.mkdir(os.path.join(scratch, split))
        damaged = []
        for scene, boxes in sorted(by_scene.items()):
            image, problem = _read_scene(os.path.join(scenes_dir, scene))
            if problem:
                damaged.append(f"{scene} ({problem})")
            elif not damaged:  # after the first damaged scene, only look for more
                _write_crops(image, os.path.join(scenes_dir, scene), scene, boxes, scratch)
        if damaged:
            raise ReIDError(
                f"cuhk_sysu: {len(damaged)} scene image(s) in {scenes_dir} cannot be read, e.g. "
                f"{', '.join(damaged[:3])}; replace them from the release."
            )
        # Another process finishing the same extraction first is as good: keep it.
        install_folder(scratch, target, keep_existing=lambda: True, replace=False)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def _read_scene(path):
    """(BGR image, None), or (None, why it cannot be used)."""
    with open(path, "rb") as handle:
        data = handle.read()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:  # also a cut JPEG: OpenCV's decoder refuses one
        return None, "empty file" if not data else "not a readable image"
    return image, None


def _write_crops(image, path, scene, boxes, folder):
    height, width = image.shape[:2]
    for split, pid, box in boxes:
        x, y, w, h = box
        # Clipped to the scene: a box may reach a pixel past the border.
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 <= x0 or y1 <= y0:
            raise ReIDError(
                f"cuhk_sysu: box (x, y, w, h)={box} of p{pid} lies outside the {width}x{height} "
                f"scene {path}; the annotation does not belong to this image."
            )
        name = _crop_name(pid, scene, box)
        if not cv2.imwrite(os.path.join(folder, split, name), image[y0:y1, x0:x1]):
            raise ReIDError(f"cuhk_sysu: could not write {name} to {folder}/{split}.")


def _check_crops(target, protocol):
    for split in SPLITS:
        folder = os.path.join(target, split)
        on_disk = set(list_images(folder)) if os.path.isdir(folder) else set()
        missing = [_crop_name(*i) for i in protocol[split] if _crop_name(*i) not in on_disk]
        if missing:
            raise ReIDError(
                f"cuhk_sysu: {len(missing)} crop(s) of the annotation are not in {folder}, e.g. "
                f"{', '.join(missing[:3])}; delete {target} to crop the scenes again."
            )
