"""MSMT17 (Wei et al., CVPR 2018): 4,101 ids, 126,441 images, 15 cameras.

Wei, Zhang, Gao & Tian, "Person Transfer GAN to Bridge Domain Gap for Person
Re-Identification", CVPR 2018.

Layout of the official ``MSMT17_V1`` (V2, with masked faces, names its image
folders ``mask_train_v2`` and ``mask_test_v2``; both are accepted)::

    ROOT/list_train.txt, list_val.txt       images under ROOT/train/ (V2: mask_train_v2/)
    ROOT/list_query.txt, list_gallery.txt   images under ROOT/test/  (V2: mask_test_v2/)
    ROOT/train/0000/0000_000_01_0303morning_0015_0.jpg

A list line is ``{relative path} {pid}``; the camera is the third ``_``
field of the file name (1-15, camid 0-14). The pids are the release's own:
train ids 0-1,040 and test ids 0-3,059 are numbered separately, so pid 0 is a
real person (not a distractor) and the same number in train and test is two
different people. ``list_val.txt`` holds images of the training ids set apart
for validation: ``with_val=False`` (default, as in most published results)
leaves them out, ``with_val=True`` adds them to train (the paper's 32,621).
"""

import os

from keras_reid.data.dataset import ReIDDataset, make_table, register_dataset
from keras_reid.errors import ReIDError
from keras_reid.fileio import read_text

FOLDERS = (("train", "test"), ("mask_train_v2", "mask_test_v2"))
LAYOUT = "ROOT/list_{train,val,query,gallery}.txt with ROOT/train/ and ROOT/test/ (V2: mask_*_v2/)"


@register_dataset("msmt17")
def msmt17(root, with_val=False):
    """MSMT17 V1 or V2: 1,041 train ids (30,248 images), 11,659 queries, 82,161 gallery images.

    Args:
        root: the extracted ``MSMT17_V1`` or ``MSMT17_V2`` folder.
        with_val: add ``list_val.txt`` (2,373 images of the train ids) to train (default False).

    Example:
        >>> msmt = load_dataset("msmt17", "/data/MSMT17_V1", with_val=True)
    """
    root = os.path.abspath(os.path.expanduser(str(root)))
    found = [pair for pair in FOLDERS if os.path.isdir(os.path.join(root, pair[0]))]
    if not found:
        raise ReIDError(f"msmt17: no folder 'train' or 'mask_train_v2' under {root} ({LAYOUT}).")
    train_dir, test_dir = found[0]
    lists = ("train", "val") if with_val else ("train",)
    train = [r for name in lists for r in _read_list(root, name, train_dir)]
    return ReIDDataset(
        name="msmt17",
        train=make_table(train, "msmt17"),
        query=make_table(_read_list(root, "query", test_dir), "msmt17"),
        gallery=make_table(_read_list(root, "gallery", test_dir), "msmt17"),
    )


def _read_list(root, name, images):
    list_path = os.path.join(root, f"list_{name}.txt")
    folder = os.path.join(root, images)
    if not os.path.isfile(list_path):
        raise ReIDError(f"msmt17: no file list_{name}.txt under {root} ({LAYOUT}).")
    if not os.path.isdir(folder):
        raise ReIDError(f"msmt17: no folder {images!r} under {root} ({LAYOUT}).")
    records = []
    lines = read_text(list_path, "msmt17: file list").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            relative, pid = fields
            camera = int(os.path.basename(relative).split("_")[2])
            records.append(
                {"path": os.path.join(folder, relative), "pid": int(pid), "camid": camera - 1}
            )
        except (ValueError, IndexError):
            raise ReIDError(
                f"msmt17: {list_path} line {number} is not 'PID/PID_IDX_CAM_..._N.jpg PID': "
                f"{line.strip()!r}."
            ) from None
    missing = [r["path"] for r in records if not os.path.isfile(r["path"])]
    if missing:
        raise ReIDError(
            f"msmt17: {len(missing)} image(s) of list_{name}.txt are not under {folder}, "
            f"e.g. {missing[0]}; is this the folder of the same release (V1/V2)?"
        )
    return records
