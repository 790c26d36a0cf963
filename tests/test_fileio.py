"""Atomic writes, folder installs and the clean-up of a killed writer's temporaries."""

import os
import re
import subprocess
import sys

import pytest

from keras_reid.errors import ReIDError
from keras_reid.fileio import (
    atomic_output,
    install_folder,
    make_folder,
    remove_stale_temporaries,
    temporary_folder,
    temporary_prefix,
)


def dead_pid():
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_the_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = dead_pid()
    (tmp_path / "sub").mkdir()
    stale_file = tmp_path / f".model.keras.tmp-{dead}-abc.keras"
    stale_folder = tmp_path / "sub" / f".1.tmp-{dead}-xyz"
    live = tmp_path / f".state.json.tmp-{os.getppid()}-abc"  # pytest's parent is alive
    mine = tmp_path / (temporary_prefix(tmp_path / "log.csv") + "q")
    for path in (stale_file, live, mine):
        path.write_text("partial")
    stale_folder.mkdir()
    (stale_folder / "saved_model.pb").write_text("partial")
    kept = [tmp_path / "model.keras", tmp_path / ".hidden", tmp_path / f"x.tmp-{dead}-a"]
    for path in kept:
        path.write_text("result")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(
        [str(stale_file), str(stale_folder)]
    )
    assert all(p.exists() for p in (live, mine, *kept))
    assert not stale_file.exists() and not stale_folder.exists()


def test_remove_stale_temporaries_of_one_name(tmp_path):
    dead = dead_pid()
    mine, other = tmp_path / f".synth-a.tmp-{dead}-1", tmp_path / f".synth-b.tmp-{dead}-1"
    mine.mkdir(), other.mkdir()
    assert remove_stale_temporaries(tmp_path, name="synth-a") == [str(mine)]
    assert other.exists()


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        with open(temporary, "w") as stream:
            stream.write("half")
        raise RuntimeError("disk gone")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["results.csv"]


def test_install_folder_without_replace_keeps_what_another_writer_put_there(tmp_path):
    out = tmp_path / "synth-a"
    first, second = temporary_folder(out), temporary_folder(out)
    for folder, text in ((first, "seed 0"), (second, "seed 1")):
        with open(os.path.join(folder, "meta"), "w") as stream:
            stream.write(text)
    install_folder(first, out, replace=False)
    with pytest.raises(FileExistsError, match="written by another process meanwhile; it was kept"):
        install_folder(second, out, replace=False)
    assert (out / "meta").read_text() == "seed 0"
    assert os.listdir(tmp_path) == ["synth-a"]  # the loser's temporary is gone
    third = temporary_folder(out)
    install_folder(third, out)  # replace=True: the explicit overwrite
    assert os.listdir(out) == []


def test_make_folder_names_the_file_in_the_way(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("a file")
    with pytest.raises(ReIDError, match=re.escape(f"{notes} is a file, not a folder; choose")):
        make_folder(notes)
    for path in (notes / "sub", notes / "sub" / "deeper"):
        expected = f"cannot create the folder {path}: {notes} is a file, not a folder; choose"
        with pytest.raises(ReIDError, match=re.escape(expected)):
            make_folder(path)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
    made = tmp_path / "a" / "b"
    assert make_folder(made) == made and made.is_dir()
    assert make_folder(made) == made  # an existing folder is fine
