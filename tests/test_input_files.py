"""One rule for what a readable input file is (inputs.files), read by embeddings, policies and JSON
inputs alike: a directory, a FIFO, a missing path or an oversized file is refused naming the path,
before anything is opened that could block."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drift_decider.api import read_json_file
from drift_decider.errors import InputError, PolicyError
from drift_decider.inputs.embeddings import load_embeddings
from drift_decider.inputs.files import FileRefused, read_limited, regular_file_size
from drift_decider.policy import load_policy


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "folder").mkdir()
    (tmp_path / "big").write_bytes(b"x" * 101)
    return {"fifo": fifo, "folder": tmp_path / "folder", "missing": tmp_path / "missing", "big": tmp_path / "big"}


@pytest.mark.parametrize("kind, reason", [("fifo", "not a regular file"), ("folder", "is a directory"),
                                          ("missing", "file not found")])
def test_what_is_not_a_regular_file_is_refused_by_every_reader(paths, kind, reason) -> None:
    path = paths[kind]
    for read in (regular_file_size, lambda p: read_limited(p, 100)):
        with pytest.raises(FileRefused, match=f"^{path}: {reason}"):
            read(path)
    with pytest.raises(InputError, match=f"^{path}: {reason}"):
        load_embeddings(path)
    with pytest.raises(InputError, match=f"^{path}: {reason}"):
        read_json_file(path, "metrics")
    with pytest.raises(PolicyError, match=reason) as info:
        load_policy(path)
    assert f"{path}:1:1" in str(info.value)


def test_a_file_over_its_limit_is_refused_before_it_is_read(paths) -> None:
    assert regular_file_size(paths["big"]) == 101
    assert read_limited(paths["big"], 101) == b"x" * 101
    with pytest.raises(FileRefused, match="file is 101 bytes, larger than the 100-byte limit"):
        read_limited(paths["big"], 100)
