"""Which datasets a run reads: a dataset is its images, not its loader's name.

Two folders read by one loader (market1501:A, market1501:B) are two datasets:
their pids are other people, they get their own classes and θ_nui groups, and
one may be the source of the other. The same dataset twice, or a target that is
a source, is refused with one line. Met through the installed console script
on tiny trees in Market-1501's layout and in the folder loader's.
"""

import json
import os

import pytest
import yaml
from console import finish, start
from helpers import TINY_TRUNK

from tests.data.fixtures import write_tree

SMALL = {**TINY_TRUNK, "input_shape": [64, 32, 3], "embedding_dim": 16}
TRAIN = {
    "model": SMALL,
    "batches": {"p": 2, "k": 2},
    "schedule": {"base_lr": 1e-3, "decay_start_epoch": 1, "decay_end_epoch": 2},
    "train": {"epochs": 0, "verbose": 0},
}


def market_tree(root, train_pids, test_pids=(1, 3)):
    """Market-1501's layout: two train images of each pid (cameras 1 and 3), one query and
    one gallery image of each test pid, and a junk and a distractor gallery image."""
    write_tree(
        root,
        {
            "bounding_box_train": [
                f"{pid:04d}_c{cam}s1_{100 * pid + cam:06d}_01.jpg"
                for pid in train_pids
                for cam in (1, 3)
            ],
            "query": [f"{pid:04d}_c1s1_{pid:06d}_00.jpg" for pid in test_pids],
            "bounding_box_test": [f"{pid:04d}_c2s1_{pid:06d}_01.jpg" for pid in test_pids]
            + ["-1_c1s1_000401_03.jpg", "0000_c3s1_000501_04.jpg"],
        },
    )
    return root


def folder_tree(root, pids):
    """The folder loader's identity folders (train only), two images of each pid."""
    return write_tree(root, {f"train/{pid:04d}": ["a_c1.jpg", "b_c2.jpg"] for pid in pids})


def msml_config(specs):
    """The shared path with a softmax on logits, whose size is the number of classes."""
    return {
        "data": {"train": specs},
        **TRAIN,
        "model": {"name": "trinet", **SMALL},
        "losses": {"logits": {"name": "softmax"}},
        "optimizer": {"name": "adam"},
        "schedule": {"name": "piecewise", "boundaries": [], "values": [1.0e-3]},
    }


def old_run(folder, config, classes):
    """A run folder as keras-reid wrote it before roots were told apart, before its first epoch."""
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    recorded = {"num_classes": len(classes), "classes": classes}
    (folder / "classes.json").write_text(json.dumps(recorded))
    return recorded


def config_file(path, config):
    path.write_text(yaml.safe_dump(config))
    return path


def one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("keras-reid train: error: "), err
    return lines[0]


def embae_config(sources, target):
    return {
        "data": {"sources": sources, "target": target},
        "embedding": {**TRAIN, "train": {"epochs": 1, "verbose": 0}},
        "autoencoder": {"nui_dim": 4, "decoder_hidden": 8},
        **{
            stage: {"epochs": 1, "learning_rate": 1e-3, "batch_size": 4}
            for stage in ("pretrain", "finetune", "finetune_nui")
        },
        "variants": ["dataset_nui"],
        "train": {"verbose": 0, "export_inference": False, "ten_views": False},
    }


def test_two_roots_of_one_loader_are_two_datasets_in_classes_groups_and_summaries(tmp_path):
    # market1501 roots A and B share pids 2 and 11, folder roots F and G share pid 2:
    # merged by loader name they were 5 + 3 classes, one θ_nui group, and C (a third
    # market1501 root) was refused as "also a source".
    a = market_tree(str(tmp_path / "A"), (2, 7, 11))
    b = market_tree(str(tmp_path / "B"), (2, 5, 11, 12))
    c = market_tree(str(tmp_path / "C"), (3, 4))
    f = folder_tree(str(tmp_path / "F"), (2, 3))
    g = folder_tree(str(tmp_path / "G"), (2, 4))
    specs = [f"market1501:{a}", f"market1501:{b}", f"folder:{f}", f"folder:{g}"]
    classes_config = config_file(tmp_path / "classes.yaml", {"data": {"train": specs}, **TRAIN})
    embae = config_file(
        tmp_path / "embae.yaml", embae_config(specs[:2], {"name": "market1501", "root": c})
    )
    # An old run on two roots without a pid in common: each class was one person, so
    # it resumes (its classes relabelled); roots with a pid in common are refused below.
    d, e = (
        market_tree(str(tmp_path / name), pids) for name, pids in (("D", (1, 3)), ("E", (5, 6)))
    )
    disjoint = msml_config([f"market1501:{d}", f"market1501:{e}"])
    old_run(tmp_path / "old", disjoint, [["market1501", pid] for pid in (1, 3, 5, 6)])
    resumed = config_file(tmp_path / "old.yaml", disjoint)
    runs = {
        "classes": start(
            ["train", "embedding", "--config", classes_config, "--out", tmp_path / "r"]
        ),
        "embae": start(["train", "embae", "--config", embae, "--out", tmp_path / "e"]),
        "resumed": start(
            ["train", "msml", "--config", resumed, "--out", tmp_path / "old", "--resume"]
        ),
        "datasets": start(["datasets", f"market1501:{a}", f"market1501:{b}"]),
    }
    results = {name: finish(popen) for name, popen in runs.items()}
    for name, (code, _, err) in results.items():
        assert code == 0, (name, err)
    # keras-reid datasets: a summary row per root and split (dataset, split, ids, images,
    # cameras), by hand: train two images of each pid in cameras 1 and 3; the gallery
    # adds a junk and a distractor image (not persons) in cameras 1 and 3.
    summary = [line.split() for line in results["datasets"][1].splitlines()[1:]]
    assert summary == [
        ["market1501:A", "train", "3", "6", "2"],
        ["market1501:A", "query", "2", "2", "1"],
        ["market1501:A", "gallery", "2", "4", "3"],
        ["market1501:B", "train", "4", "8", "2"],
        ["market1501:B", "query", "2", "2", "1"],
        ["market1501:B", "gallery", "2", "4", "3"],
    ]
    # By hand: A 3 pids, B 4, F 2, G 2; each root's pids in ascending order.
    expected = [
        *(["market1501:A", pid] for pid in (2, 7, 11)),
        *(["market1501:B", pid] for pid in (2, 5, 11, 12)),
        *(["folder:F", pid] for pid in (2, 3)),
        *(["folder:G", pid] for pid in (2, 4)),
    ]
    classes = json.loads((tmp_path / "r" / "classes.json").read_text())
    assert classes == {"num_classes": 11, "classes": expected}
    # EmbAE's target C is labelled (pids 3 and 4, two images each): used without its
    # labels, and said once.
    said = "data.target market1501:C: the person ids of its 4 labelled train images are ignored"
    assert results["embae"][2].count(said) == 1, results["embae"][2]
    # EmbAE: stage 1 trains on A and B's 7 people; θ_nui has a group per root.
    stage1 = json.loads((tmp_path / "e" / "embedding" / "classes.json").read_text())
    assert stage1 == {"num_classes": 7, "classes": expected[:7]}
    groups = json.loads((tmp_path / "e" / "dataset_nui" / "groups.json").read_text())
    assert groups == {"nui": "dataset", "groups": ["market1501:A", "market1501:B", "market1501:C"]}
    relabelled = json.loads((tmp_path / "old" / "classes.json").read_text())
    expected = [["market1501:D", pid] for pid in (1, 3)] + [
        ["market1501:E", 5],
        ["market1501:E", 6],
    ]
    assert relabelled == {"num_classes": 4, "classes": expected}
    assert (tmp_path / "old" / "model.keras").is_file()


@pytest.mark.slow
def test_a_dataset_given_twice_as_its_own_target_or_resumed_merged_is_refused_with_one_line(
    tmp_path, tiny_synth
):
    a = market_tree(str(tmp_path / "A"), (2, 7, 11))
    os.symlink(a, tmp_path / "A_link")
    synth = {"name": "synth-a", "root": tiny_synth["synth-a"], "ids": 12, "size": [64, 32]}
    pul = {
        "data": {"target": f"market1501:{a}", "sources": [f"market1501:{a}"]},
        "start": {"train": {k: v for k, v in msml_config([]).items() if k != "data"}},
        "pul": {"iterations": 1, "clusters": 2, "lambda_start": 0.0},
        "finetune": {
            "batches": {"p": 2, "k": 1},
            "optimizer": {"name": "sgd"},
            "schedule": {"name": "piecewise", "boundaries": [], "values": [1.0e-3]},
            "train": {"epochs": 0},
        },
        "train": {"verbose": 0},
    }
    twice = {"data": {"train": [f"market1501:{a}", f"market1501:{tmp_path / 'A_link'}"]}}
    # A run folder written before roots were told apart: A and B's pids 2 and 11 merged.
    b = market_tree(str(tmp_path / "B"), (2, 5, 11, 12))
    merged = msml_config([f"market1501:{a}", f"market1501:{b}"])
    old = tmp_path / "msml"
    recorded = old_run(old, merged, [["market1501", pid] for pid in (2, 5, 7, 11, 12)])
    cases = {
        # One folder through a symlink: the same 6 train images, merged into one
        # class each before.
        "embedding": (
            {**twice, **TRAIN},
            "data.train entries 1 and 2 are the same dataset (the same 12 images of "
            f"market1501 {a}); give each dataset once.",
        ),
        # The SynthReID generation read again by the market1501 loader: another
        # name, the same images (EmbAE compared names only).
        "embae": (
            embae_config([synth], f"market1501:{tiny_synth['synth-a']}"),
            "data.target is also a source: data.sources entry 1 (synth-a "
            f"{tiny_synth['synth-a']}) has the same",
        ),
        # Resumed, it trained on: its 5 logits were the 7 people of A and B merged.
        "msml": (
            merged,
            f"--resume: {old / 'classes.json'} records ClassMap(5 classes from market1501), "
            "but the data give ClassMap(7 classes from market1501:A, market1501:B)",
        ),
        # PUL took its own source as target.
        "pul": (
            pul,
            f"data.target is also a source: data.sources entry 1 (market1501 {a}) has "
            "the same 12 images; the target is the unlabelled dataset to adapt to, so give "
            "another one.",
        ),
    }
    runs = {}
    for recipe, (config, _) in cases.items():
        path = config_file(tmp_path / f"{recipe}.yaml", config)
        resume = ["--resume"] if recipe == "msml" else []
        args = ["train", recipe, "--config", path, "--out", tmp_path / recipe, *resume]
        runs[recipe] = start(args, stderr=tmp_path / f"{recipe}.err")
    for recipe, popen in runs.items():
        code, _, err = finish(popen)
        assert code == 2, (recipe, err)
        assert cases[recipe][1] in one_error_line(err), recipe
        assert not (tmp_path / recipe).exists() or recipe == "msml", recipe
    assert sorted(os.listdir(old)) == ["classes.json", "config.yaml"]
    assert json.loads((old / "classes.json").read_text()) == recorded
