"""keras_reid.data.pipeline on tiny image trees whose pixels encode their labels.

Every fixture image is one flat colour: red = 12 × pid, green = 60 + 120 ×
table index, blue = 50 × camid (camid is the image's index within its id,
so that rows of one id are told apart). Whatever the batch, the labels can be
checked against the pixels they came with.
"""

import cv2
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from keras_reid.data.dataset import make_table
from keras_reid.data.images import IMAGE_ERRORS, explain_unreadable, find_unreadable, load_image
from keras_reid.data.labels import ClassMap
from keras_reid.data.pipeline import inference_batches, steps_per_epoch
from keras_reid.data.samplers import (
    cross_domain_batches,
    mixed_batches,
    pk_batches,
    unlabeled_batches,
)
from keras_reid.errors import ReIDError
from tests.faults.damage import DAMAGE, damage

SIZE = (32, 16)
FORMATS = (".jpg", ".png", ".bmp")
# JPEG keeps a flat colour to within a few levels; PNG and BMP exactly.
TOLERANCE = 4


def colour(pid, table, camid):
    """RGB of a fixture image."""
    return 12 * pid, 60 + 120 * table, 50 * camid


def write_table(folder, name, table_index, images_per_pid):
    """A table of flat-colour images in JPEG, PNG and BMP, ``{pid: image count}``."""
    folder.mkdir()
    records = []
    for pid, count in images_per_pid.items():
        for camid in range(count):
            path = folder / f"{pid}_{camid}{FORMATS[(pid + camid) % 3]}"
            rgb = colour(pid, table_index, camid)
            cv2.imwrite(str(path), np.full((24, 12, 3), rgb[::-1], np.uint8))
            records.append((str(path), pid, camid))
    return make_table(records, name)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    # alpha: ids 0-7 with 5 images, ids 8-9 with 2 (fewer than K=4): 44 images.
    alpha = write_table(root / "alpha", "alpha", 0, {**dict.fromkeys(range(8), 5), 8: 2, 9: 2})
    # beta: ids 10-15 with 4 images: 24 images.
    beta = write_table(root / "beta", "beta", 1, dict.fromkeys(range(10, 16), 4))
    return {"alpha": alpha, "beta": beta}


def labels_from_pixels(images):
    """(pid, table, camid) per image, read back from its mean colour."""
    mean = images.numpy().mean(axis=(1, 2))
    assert np.abs(images.numpy() - mean[:, None, None]).max() <= TOLERANCE
    red, green, blue = mean.T
    return (
        np.rint(red / 12).astype(int),
        np.rint((green - 60) / 120).astype(int),
        np.rint(blue / 50).astype(int),
    )


def take(dataset, count):
    return list(dataset.take(count))


def test_pk_batches_are_p_ids_of_k_consecutive_images_from_one_table(tables):
    p, k = 3, 4
    dataset = pk_batches(
        [tables["alpha"], tables["beta"]], p=p, k=k, image_size=SIZE, seed=0, with_meta=True
    )
    assert dataset.element_spec[0].shape == (p * k, *SIZE, 3)
    table_pids = [set(tables["alpha"].pid), set(tables["beta"].pid)]
    for images, meta in take(dataset, 25):
        assert images.dtype == tf.float32
        assert meta["pid"].dtype == tf.int32
        pids, table, camids = (meta[key].numpy() for key in ("pid", "dataset", "camid"))
        groups = pids.reshape(p, k)
        assert (groups == groups[:, :1]).all(), "K consecutive rows per id"
        assert len(set(groups[:, 0])) == p, "P distinct ids"
        assert len(set(table)) == 1, "one table per batch"
        assert set(pids) <= table_pids[table[0]]
        pixel_pids, pixel_table, pixel_camids = labels_from_pixels(images)
        np.testing.assert_array_equal(pixel_pids, pids)
        np.testing.assert_array_equal(pixel_table, table)
        np.testing.assert_array_equal(pixel_camids, camids)


def test_plain_labels_are_the_pids(tables):
    images, pids = take(pk_batches(tables["beta"], p=2, k=2, image_size=SIZE, seed=1), 1)[0]
    assert pids.shape == (4,)
    np.testing.assert_array_equal(labels_from_pixels(images)[0], pids.numpy())


def test_tables_are_chosen_in_proportion_to_their_images(tables):
    dataset = pk_batches(
        tables, p=2, k=2, image_size=SIZE, augment=None, seed=2, with_meta=True, cache=True
    )
    chosen = [int(meta["dataset"][0]) for _, meta in take(dataset, 400)]
    share = np.mean(np.array(chosen) == 0)
    assert abs(share - 44 / 68) < 0.08


def test_ids_with_enough_images_are_drawn_without_replacement_others_with(tables):
    dataset = pk_batches(tables["alpha"], p=6, k=4, image_size=SIZE, seed=3, with_meta=True)
    seen_small = 0
    for _, meta in take(dataset, 30):
        pids = meta["pid"].numpy().reshape(6, 4)
        camids = meta["camid"].numpy().reshape(6, 4)
        for pid, rows in zip(pids[:, 0], camids, strict=True):
            if pid in (8, 9):
                # Two images for K=4: both appear, the rest are repeats.
                assert set(rows) == {0, 1}
                seen_small += 1
            else:
                assert len(set(rows)) == 4
    assert seen_small > 0


def test_seeded_batches_repeat_and_cache_changes_nothing(tables):
    def batches(seed, cache=False):
        dataset = pk_batches(tables, p=2, k=2, image_size=SIZE, seed=seed, cache=cache)
        return [(images.numpy(), pids.numpy()) for images, pids in take(dataset, 4)]

    first = batches(5)
    for other in (batches(5), batches(5, cache=True)):
        for (images_a, pids_a), (images_b, pids_b) in zip(first, other, strict=True):
            np.testing.assert_array_equal(pids_a, pids_b)
            np.testing.assert_array_equal(images_a, images_b)
    assert any((a[1] != b[1]).any() for a, b in zip(first, batches(6), strict=True))


def test_augmentation_is_seeded_too(tmp_path):
    # A left-to-right ramp: flips and crops show in the pixels.
    ramp = np.tile(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], (32, 1, 3))
    records = []
    for pid in range(2):
        for index in range(2):
            path = tmp_path / f"{pid}_{index}.png"
            cv2.imwrite(str(path), ramp)
            records.append((str(path), pid, 0))
    table = make_table(records, "ramp")

    def first_images(seed):
        return take(pk_batches(table, p=2, k=2, image_size=SIZE, seed=seed), 1)[0][0].numpy()

    np.testing.assert_array_equal(first_images(7), first_images(7))
    assert not np.array_equal(first_images(7), first_images(8))
    plain = take(pk_batches(table, p=2, k=2, image_size=SIZE, augment=None, seed=7), 1)[0][0]
    assert not np.array_equal(first_images(7), plain.numpy())


def test_replicas_receive_whole_groups(tables):
    p, k, replicas = 4, 2, 2
    dataset = pk_batches(tables["alpha"], p=p, k=k, image_size=SIZE, seed=0, num_replicas=2)
    for _, pids in take(dataset, 5):
        for part in np.split(pids.numpy(), replicas):
            groups = part.reshape(p // replicas, k)
            assert (groups == groups[:, :1]).all()


def test_refuses_p_not_divisible_by_replicas(tables):
    with pytest.raises(ReIDError, match=r"P=3.*2 replicas"):
        pk_batches(tables["alpha"], p=3, k=4, num_replicas=2)


def test_refuses_table_with_fewer_ids_than_p(tables):
    with pytest.raises(ReIDError, match=r"beta: 6 identities, fewer than P=7.*smaller P"):
        pk_batches(tables, p=7, k=2)


def test_refuses_unlabelled_table(tables):
    target = tables["alpha"].assign(pid=-1)
    with pytest.raises(ReIDError, match="unlabeled_batches"):
        pk_batches(target, p=1, k=2)


@pytest.mark.parametrize(
    "arguments, name",
    [({"p": 0}, "p=0"), ({"k": 0}, "k=0"), ({"num_replicas": 0}, "num_replicas=0")],
)
def test_refuses_bad_batch_arguments(tables, arguments, name):
    with pytest.raises(ReIDError, match=f"Received: {name}"):
        pk_batches(tables["alpha"], **arguments)


def test_refuses_what_is_not_a_table():
    with pytest.raises(ReIDError, match="DataFrame"):
        pk_batches("alpha.csv")
    with pytest.raises(ReIDError, match="empty"):
        pk_batches(make_table([], "nothing"))


def test_steps_per_epoch(tables):
    assert steps_per_epoch(tables, p=3, k=4) == (44 + 24) // 12
    assert steps_per_epoch(tables["beta"], p=18, k=4) == 1


def test_unlabeled_batches_cover_the_table_each_pass_with_labels_minus_one(tables):
    beta = tables["beta"].assign(pid=-1)
    dataset = unlabeled_batches(beta, batch_size=8, image_size=SIZE, seed=0, with_meta=True)
    batches = take(dataset, 6)  # two passes over 24 images
    expected = set(zip(tables["beta"].pid, tables["beta"].camid, strict=True))
    for start in (0, 3):
        seen = []
        for images, meta in batches[start : start + 3]:
            assert (meta["pid"].numpy() == -1).all()
            pixel_pids, _, pixel_camids = labels_from_pixels(images)
            np.testing.assert_array_equal(pixel_camids, meta["camid"].numpy())
            seen += list(zip(pixel_pids, pixel_camids, strict=True))
        assert sorted(seen) == sorted(expected)
    first_pass = np.concatenate([meta["camid"].numpy() for _, meta in batches[:3]])
    second_pass = np.concatenate([meta["camid"].numpy() for _, meta in batches[3:]])
    assert not np.array_equal(first_pass, second_pass), "a new order each pass"

    again = take(unlabeled_batches(beta, 8, SIZE, seed=0), 2)
    np.testing.assert_array_equal(again[1][0].numpy(), batches[1][0].numpy())


def test_inference_batches_cover_every_row_in_order(tables):
    alpha = tables["alpha"]
    batches = list(inference_batches(alpha, SIZE, batch_size=5))
    assert [len(b) for b in batches] == [5] * 8 + [4]
    pids, table, camids = labels_from_pixels(tf.concat(batches, axis=0))
    np.testing.assert_array_equal(pids, alpha.pid)
    np.testing.assert_array_equal(camids, alpha.camid)
    assert (table == 0).all()


def test_inference_flip_mirrors_the_images(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (32, 16, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    table = make_table([(str(tmp_path / "a.png"), 1, 0)], "one")
    (plain,) = list(inference_batches(table, SIZE))
    (flipped,) = list(inference_batches(table, SIZE, flip=True))
    np.testing.assert_array_equal(plain.numpy()[0], image[:, :, ::-1])  # BGR -> RGB
    np.testing.assert_array_equal(flipped.numpy()[0], image[:, ::-1, ::-1])


@pytest.mark.parametrize("extension", FORMATS)
def test_decodes_jpeg_png_bmp_as_rgb(tmp_path, extension):
    path = tmp_path / f"image{extension}"
    cv2.imwrite(str(path), np.full((24, 12, 3), (200, 100, 30), np.uint8))  # BGR
    image = load_image(str(path), SIZE).numpy()
    assert image.shape == (*SIZE, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - (30, 100, 200)).max() <= TOLERANCE


def test_decodes_grayscale_to_three_channels(tmp_path):
    path = tmp_path / "gray.png"
    cv2.imwrite(str(path), np.full((24, 12), 77, np.uint8))
    np.testing.assert_array_equal(load_image(str(path), SIZE).numpy(), 77)


@pytest.fixture
def broken(tmp_path, tables):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"<html>not an image</html>" * 10)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    damaged = tmp_path / "damaged.png"
    good = open(tables["alpha"].path[1], "rb").read()  # a PNG
    damaged.write_bytes(good[:20] + b"\0" * 40)
    missing = tmp_path / "missing.jpg"
    records = [(str(p), 1, 0) for p in (garbage, empty, damaged, missing)]
    good_rows = tables["alpha"].head(3)
    table = pd.concat([good_rows, make_table(records, "alpha")], ignore_index=True)
    return table, [str(garbage), str(empty), str(damaged), str(missing)]


def test_find_unreadable_names_missing_empty_and_damaged_files(broken):
    table, bad = broken
    assert find_unreadable(table) == bad
    assert find_unreadable(table.head(3)) == []


def damaged_name(kind):
    return f"{kind}.png" if kind.endswith("png") else f"{kind}.jpg"


def readable(path):
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


ROOT_READS_EVERYTHING = (
    "root reads chmod-000 files; tests/faults/test_damaged_images.py checks this case in a "
    "subprocess without CAP_DAC_OVERRIDE"
)


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_find_unreadable_gives_each_damaged_file_its_reason(tmp_path, tables, kind):
    bad = damage(tmp_path / damaged_name(kind), kind)
    if kind == "no_permission" and readable(bad):
        pytest.skip(ROOT_READS_EVERYTHING)
    good = tables["alpha"].head(3)
    table = pd.concat([good.head(2), make_table([(bad, 1, 0)], "alpha"), good.tail(1)])
    assert find_unreadable(table) == [bad]
    assert find_unreadable(table, reasons=True) == [(bad, DAMAGE[kind])]


def test_half_a_jpeg_is_unreadable_although_opencv_opens_it(tmp_path):
    # The pipeline decodes with TensorFlow, which refuses what OpenCV patches up.
    path = damage(tmp_path / "half.jpg", "truncated_jpeg")
    assert cv2.imread(path) is not None
    with pytest.raises(tf.errors.InvalidArgumentError):
        load_image(path, SIZE)
    assert find_unreadable([path], reasons=True) == [(path, "truncated JPEG")]


def test_find_unreadable_lists_every_kind_in_table_order(tmp_path, tables):
    # Root reads chmod-000 files: see test_find_unreadable_gives_each_damaged_file_its_reason.
    kinds = [kind for kind in DAMAGE if kind != "no_permission"]
    good = list(tables["alpha"].path[: len(kinds) + 1])
    paths, expected = [good[0]], []
    for kind, ok in zip(kinds, good[1:], strict=True):
        path = damage(tmp_path / damaged_name(kind), kind)
        paths += [path, ok]
        expected.append((path, DAMAGE[kind]))
    assert find_unreadable(paths, reasons=True) == expected


def test_explain_unreadable_names_the_files_their_reasons_and_the_fix(tmp_path, tables):
    bad = [damage(tmp_path / damaged_name(k), k) for k in ("truncated_jpeg", "empty", "text")]
    bad.append(damage(tmp_path / "x" / "d.jpg", "folder"))
    table = pd.concat([tables["alpha"].head(2), make_table([(p, 1, 0) for p in bad], "alpha")])
    with pytest.raises(tf.errors.OpError) as caught:
        list(inference_batches(table, SIZE))
    error = explain_unreadable(caught.value, {"alpha/train": table})
    assert isinstance(error, ReIDError)
    assert str(error) == (
        f"4 unreadable image(s) in alpha/train, e.g. {bad[0]} (truncated JPEG), {bad[1]} "
        f"(empty file), {bad[2]} (not an image), ...; delete or re-extract them "
        "(keras-reid datasets NAME:ROOT --check lists them all)."
    )


def test_explain_unreadable_reraises_when_every_file_reads(tables):
    error = tf.errors.InvalidArgumentError(None, None, "not about images")
    with pytest.raises(tf.errors.InvalidArgumentError, match="not about images"):
        try:
            raise error
        except tf.errors.InvalidArgumentError as caught:
            raise explain_unreadable(caught, tables["alpha"]) from caught


@pytest.mark.parametrize("kind", ["truncated_jpeg", "symlink_loop", "folder"])
def test_every_pipeline_error_of_a_damaged_file_is_explained(tmp_path, tables, kind):
    # Each kind fails inside TensorFlow with another error class.
    bad = damage(tmp_path / damaged_name(kind), kind)
    table = pd.concat([tables["alpha"].head(2), make_table([(bad, 1, 0)], "alpha")])
    with pytest.raises(IMAGE_ERRORS) as caught:
        list(inference_batches(table, SIZE))
    assert f"{bad} ({DAMAGE[kind]})" in str(explain_unreadable(caught.value, table))


def test_decoding_error_names_a_file_that_is_not_an_image(broken):
    table, bad = broken
    with pytest.raises(tf.errors.InvalidArgumentError, match="garbage.jpg"):
        list(inference_batches(table.iloc[[0, 3]], SIZE))


def test_cache_refuses_unreadable_files_naming_them(broken):
    table, _ = broken
    with pytest.raises(ReIDError, match=r"4 unreadable image\(s\) in alpha, e\.g\. .*garbage.jpg"):
        pk_batches(table, p=1, k=2, image_size=SIZE, cache=True)


def test_cache_names_a_truncated_jpeg_and_a_symlink_loop(tmp_path, tables):
    bad = [damage(tmp_path / "t.jpg", "truncated_jpeg"), damage(tmp_path / "l.jpg", "symlink_loop")]
    table = pd.concat([tables["alpha"], make_table([(p, 99, 0) for p in bad], "alpha")])
    with pytest.raises(ReIDError) as caught:
        unlabeled_batches(table, batch_size=2, image_size=SIZE, cache=True)
    assert f"{bad[0]} (truncated JPEG), {bad[1]} (symlink loop)" in str(caught.value)


# --- class labels and mixed batches --------------------------------------------------


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory):
    """Two datasets whose pids overlap (0-3 in both), with opposite shapes.

    gamma: 4 ids x 6 images; delta: 12 ids x 2 images. Both have 24 images, so
    drawing in proportion to images would give each half of a batch's ids;
    drawing identities uniformly from the union gives delta 12/16 of them.
    """
    root = tmp_path_factory.mktemp("overlapping")
    gamma = write_table(root / "gamma", "gamma", 0, dict.fromkeys(range(4), 6))
    delta = write_table(root / "delta", "delta", 1, dict.fromkeys(range(12), 2))
    return [gamma, delta]


def expected_classes(pids, tables):
    """Class indices by hand: gamma's pids 0-3 are classes 0-3, delta's 0-11 are 4-15."""
    return np.where(tables == 0, pids, 4 + pids)


def test_mixed_batches_hold_p_classes_of_k_rows_drawn_uniformly_from_the_union(overlapping):
    p, k, count = 4, 3, 300
    dataset = mixed_batches(
        overlapping, p=p, k=k, image_size=SIZE, augment=None, seed=0, with_meta=True, cache=True
    )
    per_class = np.zeros(16, int)
    delta_ids = mixed = 0
    for images, meta in take(dataset, count):
        labels = meta["label"].numpy()
        groups = labels.reshape(p, k)
        assert (groups == groups[:, :1]).all(), "K consecutive rows per class"
        assert len(set(groups[:, 0])) == p, "P distinct classes"
        # Every row's pixels say which person of which dataset it shows.
        pixel_pids, pixel_tables, pixel_camids = labels_from_pixels(images)
        np.testing.assert_array_equal(labels, expected_classes(pixel_pids, pixel_tables))
        np.testing.assert_array_equal(meta["pid"].numpy(), pixel_pids)
        np.testing.assert_array_equal(meta["dataset"].numpy(), pixel_tables)
        for tables, camids in zip(
            pixel_tables.reshape(p, k), pixel_camids.reshape(p, k), strict=True
        ):
            # gamma ids have 6 images: 3 distinct; delta ids have 2: both.
            assert len(set(camids)) == (k if tables[0] == 0 else 2)
        per_class[groups[:, 0]] += 1
        delta_ids += int((groups[:, 0] >= 4).sum())
        mixed += len(set(pixel_tables)) == 2
    # Uniform over 16 identities: each in P/16 of the batches (75 +- 4 sigma).
    assert np.abs(per_class - count * p / 16).max() < 30, per_class
    assert abs(delta_ids / (count * p) - 12 / 16) < 0.05, "in proportion to identities"
    # A batch holds one dataset only when all P ids come from it: 496 of 1820 draws.
    assert abs(mixed / count - 1324 / 1820) < 0.1


def test_mixed_labels_are_the_class_map_and_default_to_the_tables_map(overlapping):
    classes = ClassMap.from_tables(overlapping)
    assert classes.identities[:5] == [("gamma", 0), ("gamma", 1), ("gamma", 2), ("gamma", 3)] + [
        ("delta", 0)
    ]
    reverse = ClassMap.from_tables(overlapping[::-1])  # delta first: other indices

    def first(class_map):
        dataset = mixed_batches(
            overlapping, 4, 2, SIZE, None, seed=1, with_meta=True, class_map=class_map
        )
        return [meta for _, meta in take(dataset, 3)]

    for default, given, other in zip(first(None), first(classes), first(reverse), strict=True):
        np.testing.assert_array_equal(default["label"], given["label"])
        pids, tables = other["pid"].numpy(), other["dataset"].numpy()
        np.testing.assert_array_equal(other["label"], np.where(tables == 1, pids, 12 + pids))
    plain = take(mixed_batches(overlapping, 4, 2, SIZE, None, seed=1, class_map=classes), 1)
    np.testing.assert_array_equal(plain[0][1], first(classes)[0]["label"])


@pytest.mark.parametrize("make", [mixed_batches, pk_batches], ids=["mixed", "pk"])
def test_the_stream_from_start_step_is_the_tail_of_the_stream_from_zero(overlapping, make):
    classes = ClassMap.from_tables(overlapping)

    def stream(start_step, count, cache=False):
        dataset = make(
            overlapping, 2, 2, SIZE, seed=4, cache=cache, start_step=start_step, class_map=classes
        )
        return [(images.numpy(), labels.numpy()) for images, labels in take(dataset, count)]

    whole = stream(0, 7)
    for tail in (stream(4, 3), stream(4, 3, cache=True)):
        for (images_a, labels_a), (images_b, labels_b) in zip(whole[4:], tail, strict=True):
            np.testing.assert_array_equal(labels_a, labels_b)
            np.testing.assert_array_equal(images_a, images_b)
    other_seed = make(overlapping, 2, 2, SIZE, seed=5, class_map=classes)
    assert any(
        (a[1] != b.numpy()).any() for a, (_, b) in zip(whole, take(other_seed, 7), strict=True)
    )


def test_pk_batches_with_a_class_map_are_the_same_rows_labelled_by_class(overlapping):
    classes = ClassMap.from_tables(overlapping)

    def batches(class_map):
        dataset = pk_batches(
            overlapping, 3, 2, SIZE, seed=2, with_meta=True, cache=True, class_map=class_map
        )
        return take(dataset, 20)

    for (images, meta), (images_c, meta_c) in zip(batches(None), batches(classes), strict=True):
        np.testing.assert_array_equal(images, images_c)
        for key in ("pid", "camid", "dataset"):
            np.testing.assert_array_equal(meta[key], meta_c[key])
        assert len(set(meta_c["dataset"].numpy())) == 1, "still one table per batch"
        expected = expected_classes(meta["pid"].numpy(), meta["dataset"].numpy())
        np.testing.assert_array_equal(meta_c["label"], expected)
    _, labels = take(pk_batches(overlapping[1], 3, 2, SIZE, seed=2, class_map=classes), 1)[0]
    assert labels.numpy().min() >= 4


def test_pk_batches_with_a_class_map_keep_two_datasets_of_one_table_apart(overlapping):
    # One table holding both datasets: gamma's pid 0 and delta's pid 0 are two
    # classes, and a K-group never mixes them.
    both = pd.concat(overlapping, ignore_index=True)
    classes = ClassMap.from_tables(both)
    dataset = pk_batches(both, 4, 2, SIZE, None, seed=3, cache=True, class_map=classes)
    for images, labels in take(dataset, 30):
        groups = labels.numpy().reshape(4, 2)
        assert (groups == groups[:, :1]).all() and len(set(groups[:, 0])) == 4
        pixel_pids, pixel_tables, _ = labels_from_pixels(images)
        np.testing.assert_array_equal(labels, expected_classes(pixel_pids, pixel_tables))


def test_mixed_replicas_receive_whole_groups(overlapping):
    p, k, replicas = 4, 2, 2
    dataset = mixed_batches(overlapping, p, k, SIZE, seed=0, num_replicas=replicas)
    for _, labels in take(dataset, 5):
        for part in np.split(labels.numpy(), replicas):
            groups = part.reshape(p // replicas, k)
            assert (groups == groups[:, :1]).all()
    with pytest.raises(ReIDError, match=r"P=3.*2 replicas"):
        mixed_batches(overlapping, p=3, k=2, num_replicas=2)


def test_mixed_refuses_fewer_identities_than_p_naming_both(overlapping):
    # 16 identities in the union, although each table alone has fewer than P.
    mixed_batches(overlapping, p=16, k=2, image_size=SIZE)
    with pytest.raises(ReIDError, match=r"16 identities in the union of gamma, delta.*P=17"):
        mixed_batches(overlapping, p=17, k=2, image_size=SIZE)


def test_class_labels_refuse_unlabelled_rows_and_identities_outside_the_map(overlapping):
    gamma, delta = overlapping
    with pytest.raises(ReIDError, match=r"delta: 24 image\(s\) have pid < 0.*mixed_batches"):
        mixed_batches([gamma, delta.assign(pid=-1)], p=2, k=2)
    with pytest.raises(ReIDError, match=r"delta: .*not in the class map.*delta pid 0"):
        mixed_batches(overlapping, p=2, k=2, class_map=ClassMap.from_tables(gamma))
    with pytest.raises(ReIDError, match=r"delta: .*not in the class map"):
        pk_batches(overlapping, p=2, k=2, class_map=ClassMap.from_tables(gamma))
    with pytest.raises(ReIDError, match="Received: class_map of type dict"):
        pk_batches(overlapping, p=2, k=2, class_map={"gamma": 0})


# --- cross-domain batches ------------------------------------------------------------


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """A target domain of 16 images, ids 16-19 x 4, each colour unique and unlike the sources'.

    Its pids are real ones: cross_domain_batches must ignore them.
    """
    root = tmp_path_factory.mktemp("target")
    return write_table(root / "omega", "omega", 1, dict.fromkeys(range(16, 20), 4))


def split_replicas(batch, replicas, p, k, target_size):
    """Each replica's (source rows, target rows) of a batch: numpy arrays."""
    parts = np.split(np.asarray(batch), replicas)
    source = p * k // replicas
    assert all(len(part) == source + target_size // replicas for part in parts)
    return [(part[:source], part[source:]) for part in parts]


@pytest.mark.parametrize("replicas", [1, 2])
def test_cross_domain_replicas_each_get_whole_k_groups_then_their_target_rows(
    tables, target, replicas
):
    p, k, target_size = 4, 2, 6
    classes = ClassMap.from_tables([tables["beta"], tables["alpha"]])  # beta's ids first
    sources = [tables["alpha"], tables["beta"]]
    dataset = cross_domain_batches(
        sources,
        target,
        p,
        k,
        target_size,
        SIZE,
        seed=0,
        with_meta=True,
        num_replicas=replicas,
        class_map=classes,
    )
    assert dataset.element_spec[0].shape == (p * k + target_size, *SIZE, 3)
    for images, meta in take(dataset, 10):
        assert images.dtype == tf.float32 and meta["label"].dtype == tf.int32
        pixel_pids, pixel_tables, pixel_camids = labels_from_pixels(images)
        labels = meta["label"].numpy()
        for source, target_rows in split_replicas(labels, replicas, p, k, target_size):
            assert (source >= 0).all() and (target_rows == -1).all(), "both domains, in order"
            groups = source.reshape(p // replicas, k)
            assert (groups == groups[:, :1]).all(), "whole K-groups"
            assert len(set(groups[:, 0])) == p // replicas
        domain = meta["domain"].numpy()
        for source, target_rows in split_replicas(domain, replicas, p, k, target_size):
            assert (source == 0).all() and (target_rows == 1).all()
        source = domain == 0
        # Target images show ids 16-19; their labels and pids are -1 all the same.
        assert (pixel_pids[~source] >= 16).all() and (pixel_pids[source] < 16).all()
        np.testing.assert_array_equal(meta["pid"].numpy()[~source], -1)
        np.testing.assert_array_equal(meta["dataset"].numpy()[~source], 2)
        np.testing.assert_array_equal(meta["camid"].numpy(), pixel_camids)
        # Source rows: the pixels' person, as a class of the map (beta's ids first).
        np.testing.assert_array_equal(meta["pid"].numpy()[source], pixel_pids[source])
        np.testing.assert_array_equal(meta["dataset"].numpy()[source], pixel_tables[source])
        expected = np.where(pixel_tables == 1, pixel_pids - 10, pixel_pids + 6)
        np.testing.assert_array_equal(labels[source], expected[source])

    _, plain = take(cross_domain_batches(tables["alpha"], target, 2, 2, 4, SIZE, seed=0), 1)[0]
    assert plain.dtype == tf.int32
    np.testing.assert_array_equal(plain.numpy()[4:], -1)
    assert set(plain.numpy()[:4]) <= set(range(10)), "without a class map: the pids"


def test_cross_domain_source_rows_are_the_pk_batches_of_the_same_seed(tables, target):
    p, k, target_size, replicas = 4, 2, 4, 2
    source = pk_batches(tables, p, k, SIZE, seed=3, num_replicas=replicas)
    both = cross_domain_batches(tables, target, p, k, target_size, SIZE, seed=3, num_replicas=2)
    for (images, labels), (source_images, source_labels) in zip(
        take(both, 5), take(source, 5), strict=True
    ):
        pairs = zip(
            split_replicas(images, replicas, p, k, target_size),
            split_replicas(labels, replicas, p, k, target_size),
            np.split(source_images.numpy(), replicas),
            np.split(source_labels.numpy(), replicas),
            strict=True,
        )
        for (image_part, _), (label_part, _), expected_images, expected_labels in pairs:
            np.testing.assert_array_equal(image_part, expected_images)
            np.testing.assert_array_equal(label_part, expected_labels)


@pytest.mark.parametrize("replicas", [1, 2])
def test_cross_domain_target_rows_cover_the_target_once_per_pass(tables, target, replicas):
    target_size = 4
    dataset = cross_domain_batches(
        tables["alpha"],
        target,
        2,
        2,
        target_size,
        SIZE,
        augment=False,
        seed=1,
        num_replicas=replicas,
    )
    expected = sorted(zip(target.pid, target.camid, strict=True))
    passes = []
    for start in (0, 4):  # 16 images, 4 per batch: a pass is 4 batches
        seen = []
        for images, labels in take(dataset.skip(start), 4):
            rows = np.concatenate(
                [t for _, t in split_replicas(np.arange(len(labels)), replicas, 2, 2, target_size)]
            )
            np.testing.assert_array_equal(labels.numpy()[rows], -1)
            pixel_pids, _, pixel_camids = labels_from_pixels(tf.gather(images, rows))
            seen += list(zip(pixel_pids, pixel_camids, strict=True))
        assert sorted(seen) == expected, "every target image once per pass"
        passes.append(seen)
    assert passes[0] != passes[1], "a new order each pass"


def test_cross_domain_stream_from_start_step_is_the_tail_of_the_stream_from_zero(tables, target):
    def stream(start_step, count, seed=4, cache=False):
        dataset = cross_domain_batches(
            tables, target, 2, 2, 3, SIZE, seed=seed, cache=cache, start_step=start_step
        )
        return [(images.numpy(), labels.numpy()) for images, labels in take(dataset, count)]

    whole = stream(0, 8)
    for tail in (stream(3, 5), stream(3, 5, cache=True)):
        for (images_a, labels_a), (images_b, labels_b) in zip(whole[3:], tail, strict=True):
            np.testing.assert_array_equal(labels_a, labels_b)
            np.testing.assert_array_equal(images_a, images_b)
    other = stream(0, 8, seed=5)
    assert any((a[0] != b[0]).any() for a, b in zip(whole, other, strict=True))


def test_cross_domain_source_and_target_streams_are_not_the_same_draws(tmp_path):
    # Source and target the same ramp images (told apart by path only): with
    # one seed for both streams, both halves would be augmented alike.
    ramp = np.tile(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], (32, 1, 3))
    records = []
    for name in ("s", "t"):
        for index in range(8):
            path = tmp_path / f"{name}{index}.png"
            cv2.imwrite(str(path), ramp)
            records.append((str(path), index, 0))
    source, target = make_table(records[:8], "source"), make_table(records[8:], "target")
    dataset = cross_domain_batches(source, target, 4, 1, 4, SIZE, seed=0)
    assert any(
        not np.array_equal(images[:4].numpy(), images[4:].numpy()) for images, _ in take(dataset, 4)
    )


@pytest.mark.parametrize(
    "target_value", [None, [], {}, "empty"], ids=["none", "list", "dict", "table"]
)
def test_cross_domain_refuses_a_missing_or_empty_target(tables, target_value):
    if target_value == "empty":
        target_value = make_table([], "omega")
    with pytest.raises(ReIDError, match=r"need a target.*give data\.target, the unlabelled"):
        cross_domain_batches(tables["alpha"], target_value, p=2, k=2)


@pytest.mark.parametrize(
    "target_size, match",
    [
        (0, r"target_size must be a positive integer\. Received: target_size=0"),
        (2.0, r"Received: target_size=2\.0"),
        (3, r"target_size=3 .*2 replicas.*multiple of 2"),
    ],
)
def test_cross_domain_refuses_a_bad_target_size(tables, target, target_size, match):
    with pytest.raises(ReIDError, match=match):
        cross_domain_batches(tables, target, 2, 2, target_size, num_replicas=2)


def test_cross_domain_refuses_p_not_divisible_by_replicas(tables, target):
    with pytest.raises(ReIDError, match=r"P=3.*2 replicas"):
        cross_domain_batches(tables, target, p=3, k=2, num_replicas=2)


def test_cross_domain_refuses_a_target_that_is_a_source(tables, target):
    shuffled = tables["beta"].sample(frac=1, random_state=0).assign(pid=-1)
    with pytest.raises(ReIDError, match=r"target beta is also a source \(beta\).*24 images"):
        cross_domain_batches(tables, {"beta": shuffled}, p=2, k=2)
    # Sharing some images only is allowed (e.g. a target holding a few source images).
    cross_domain_batches(tables, pd.concat([target, tables["beta"].head(2)]), p=2, k=2)
