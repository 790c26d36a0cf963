"""Dataset labels: two datasets of one loader are told apart, distinct names are left alone."""

import os

from keras_reid.data.dataset import ReIDDataset, label_apart, make_table, spec_labels


def dataset(name, folder, pids):
    """One image per pid in ``folder/train``, one of the first pid in ``folder/query``."""
    train = make_table([(os.path.join(folder, "train", f"{p}.jpg"), p, 0) for p in pids], name)
    query = make_table([(os.path.join(folder, "query", f"{pids[0]}.jpg"), pids[0], 1)], name)
    return ReIDDataset(name, train, query, make_table([], name))


def test_label_apart_names_each_root_by_the_shortest_path_end_that_tells_them_apart(tmp_path):
    for folder in ("x/A/train", "x/A/query", "y/A/train", "y/A/query"):
        (tmp_path / folder).mkdir(parents=True)
    os.symlink(tmp_path / "x" / "A", tmp_path / "link")
    roots = [tmp_path / "x" / "A", tmp_path / "y" / "A", tmp_path / "link", None, None, None]
    datasets = [
        dataset("market1501", roots[0], (2, 7)),
        dataset("market1501", roots[1], (2, 5)),
        dataset("market1501", roots[2], (2, 7)),  # x/A again, through a symlink
        dataset("dukemtmc", tmp_path / "duke", (2,)),
        dataset("synth-a", tmp_path / "synth", (1, 2)),  # one folder, other images
        dataset("synth-a", tmp_path / "synth", (1, 3)),
    ]
    labelled = label_apart(datasets, [str(r) if r else None for r in roots])
    assert [d.label for d in labelled] == [
        "market1501:x/A",
        "market1501:y/A",
        "market1501:x/A",
        "dukemtmc",
        "synth-a:synth#1",
        "synth-a:synth#2",
    ]
    for d in labelled:
        assert set(d.train["dataset"]) == set(d.query["dataset"]) == {d.label}
    assert labelled[3] is datasets[3]  # a name of its own: the dataset as it was
    assert set(datasets[0].train["dataset"]) == {"market1501"}  # the input is not changed


def test_spec_labels_tell_specs_of_one_name_apart_without_loading():
    specs = [
        "market1501:/d/A",
        {"name": "market1501", "root": "/d/B/"},
        "market1501:/d/A",
        "synth-b",
        {"name": "synth-a", "ids": 40},
        {"name": "synth-a", "ids": 80},
    ]
    assert spec_labels(specs) == [
        "market1501:A",
        "market1501:B",
        "market1501:A",
        "synth-b",
        "synth-a#1",
        "synth-a#2",
    ]
