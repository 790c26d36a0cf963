"""The installed console script: what a user's terminal, file or pipe receives."""

import pytest
from console import finish, run, start
from helpers import cpu_model, installed_versions


def test_an_error_line_reaches_a_file_and_a_pipe_every_time(tmp_path):
    # The error line used to be lost in about half of the runs: the thread
    # filtering fd 2 was a daemon that the exit killed before it copied it.
    args = ["datasets", "market1501:/no/such/folder"]
    runs = [start(args, stderr=tmp_path / f"err{i}.txt") for i in range(3)]
    runs += [start(args, stderr="pipe") for _ in range(3)]
    expected = (
        "keras-reid datasets: error: market1501: no folder /no/such/folder (expected the "
        "layout of the official zip: bounding_box_train/, query/, bounding_box_test/)."
    )
    for popen in runs:
        code, out, err = finish(popen)
        assert (code, out, err.splitlines()) == (2, "", [expected])


@pytest.mark.parametrize("stderr", ["pipe", "file"])
def test_usage_errors_and_help_are_not_swallowed(tmp_path, stderr):
    target = "pipe" if stderr == "pipe" else tmp_path / "err.txt"
    code, _, err = finish(start(["train", "embedding"], stderr=target))
    assert code == 2
    assert "the following arguments are required: --config, --out" in err


def test_version_names_the_libraries_behind_the_numbers():
    code, out, err = run(["--version"])
    assert (code, err) == (0, "")
    expected = installed_versions()
    libraries, cpu = out.strip().split(", cpu ")
    assert cpu.startswith(cpu_model()), cpu
    parts = dict(part.rsplit(" ", 1) for part in libraries.split(", "))
    assert list(parts) == [name.replace("_", "-") for name in expected]
    for name, version in expected.items():
        found = parts[name.replace("_", "-")]
        assert found == version or found.startswith(version + "."), (name, found)
