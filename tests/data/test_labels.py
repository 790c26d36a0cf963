"""keras_reid.data.labels.ClassMap on hand-built tables whose pids overlap across datasets."""

import json

import numpy as np
import pandas as pd
import pytest

from keras_reid.data.dataset import make_table
from keras_reid.data.labels import ClassMap
from keras_reid.errors import ReIDError


def table(dataset, pids):
    return make_table([(f"/{dataset}/{i}.jpg", pid, 0) for i, pid in enumerate(pids)], dataset)


# Market pids 7, 1, 3; Duke pids 3, 1, 2: pids 1 and 3 exist in both.
MARKET = table("market1501", [7, 1, 7, 3, 1])
DUKE = table("dukemtmc", [3, 3, 1, 2])
# By dataset in the order given, then pid ascending.
EXPECTED = [
    ("market1501", 1),
    ("market1501", 3),
    ("market1501", 7),
    ("dukemtmc", 1),
    ("dukemtmc", 2),
    ("dukemtmc", 3),
]


def test_one_class_per_dataset_qualified_identity_in_a_fixed_order():
    for tables in ([MARKET, DUKE], {"a": MARKET, "b": DUKE}, [MARKET.iloc[::-1], DUKE]):
        classes = ClassMap.from_tables(tables)
        assert classes.num_classes == len(classes) == 6
        assert classes.identities == EXPECTED
    assert ClassMap.from_tables([DUKE, MARKET]).identities == EXPECTED[3:] + EXPECTED[:3]
    assert ClassMap.from_tables(MARKET).identities == EXPECTED[:3]


def test_labels_are_the_class_index_of_each_row():
    classes = ClassMap.from_tables([MARKET, DUKE])
    for frame in (MARKET, DUKE, pd.concat([DUKE, MARKET])):
        expected = [EXPECTED.index((d, p)) for d, p in zip(frame.dataset, frame.pid, strict=True)]
        labels = classes.labels(frame)
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(classes.labels(MARKET), [2, 0, 2, 1, 0])
    np.testing.assert_array_equal(classes.labels(DUKE), [5, 5, 3, 4])


def test_tables_are_not_changed():
    before = MARKET.copy()
    classes = ClassMap.from_tables([MARKET, DUKE])
    classes.labels(MARKET)
    classes.with_labels(MARKET)
    pd.testing.assert_frame_equal(MARKET, before)
    labelled = classes.with_labels(MARKET)
    np.testing.assert_array_equal(labelled["label"], [2, 0, 2, 1, 0])
    pd.testing.assert_frame_equal(labelled.drop(columns="label"), before)


def test_a_table_spanning_two_datasets_counts_each_dataset_separately():
    both = pd.concat([MARKET, DUKE], ignore_index=True)
    classes = ClassMap.from_tables(both)
    assert classes.identities == EXPECTED


def test_json_round_trip_and_format(tmp_path):
    classes = ClassMap.from_tables([MARKET, DUKE])
    document = json.loads(classes.to_json())
    assert document == {"num_classes": 6, "classes": [list(pair) for pair in EXPECTED]}
    restored = ClassMap.from_json(classes.to_json())
    assert restored == classes and restored.identities == EXPECTED
    path = tmp_path / "run" / "classes.json"
    path.parent.mkdir()
    classes.save(path)
    assert ClassMap.load(path) == classes
    assert ClassMap.from_tables([DUKE, MARKET]) != classes


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2", "not JSON"),
        ('{"num_classes": 1}', "no 'classes'"),
        ('{"classes": []}', "no classes"),
        ('{"classes": [["market1501", 1], ["market1501", 1]]}', "twice"),
        ('{"classes": [["market1501", "one"]]}', r"\[dataset, pid\]"),
        ('{"classes": [["market1501", -1]]}', r"\[dataset, pid\]"),
        ('{"classes": [["market1501", 1]], "num_classes": 2}', "num_classes=2"),
    ],
)
def test_from_json_refuses_what_is_not_a_class_list(text, message):
    with pytest.raises(ReIDError, match=message):
        ClassMap.from_json(text)


def test_load_names_a_missing_file(tmp_path):
    with pytest.raises(ReIDError, match=r"classes.json.*(No such file|not found)"):
        ClassMap.load(tmp_path / "classes.json")


def test_refuses_rows_whose_identity_is_not_in_the_map():
    classes = ClassMap.from_tables(MARKET)
    with pytest.raises(ReIDError, match=r"4 row\(s\).*not in the class map.*dukemtmc pid 3"):
        classes.labels(DUKE)
    stranger = table("market1501", [1, 9])
    with pytest.raises(ReIDError, match=r"1 row\(s\).*market1501 pid 9"):
        classes.labels(stranger)


def test_unlabelled_rows_are_refused_unless_asked_and_then_stay_minus_one():
    classes = ClassMap.from_tables([MARKET, DUKE])
    mixed = table("dukemtmc", [2, -1, 1, -1])
    with pytest.raises(ReIDError, match=r"2 row\(s\) .*pid < 0.*unlabelled=True"):
        classes.labels(mixed)
    np.testing.assert_array_equal(classes.labels(mixed, unlabelled=True), [4, -1, 3, -1])
    target = table("viper", [-1, -1])
    np.testing.assert_array_equal(classes.labels(target, unlabelled=True), [-1, -1])


def test_from_tables_refuses_unlabelled_and_empty_and_foreign_tables():
    with pytest.raises(ReIDError, match=r"dukemtmc: 1 row\(s\) have pid < 0"):
        ClassMap.from_tables([MARKET, table("dukemtmc", [1, -1])])
    with pytest.raises(ReIDError, match="no identities"):
        ClassMap.from_tables(make_table([], "market1501"))
    with pytest.raises(ReIDError, match=r"missing column\(s\) dataset in the table; class"):
        ClassMap.from_tables(MARKET.drop(columns="dataset"))
    with pytest.raises(ReIDError, match="DataFrame"):
        ClassMap.from_tables("train.csv")
