"""Users' input files, refused before anything blocks or fills memory: a path may name a FIFO, a
device or a directory (opening or reading one can block forever) or a file far larger than its kind
ever is. One place decides what a readable input file is; each reader adds what its format needs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from drift_decider.errors import InputError


class FileRefused(InputError):
    """A path that is not a readable regular file (within its limit). ``reason`` says why without the
    path, for readers that name the place their own way (a policy names ``file:line:col``)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def regular_file_size(path: str | Path) -> int:
    """The size in bytes of ``path``, a regular file (``stat`` never blocks); FileRefused otherwise."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return _size_of_regular(path, info)


def read_limited(path: str | Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes; FileRefused otherwise. Opened
    without blocking and checked on the open file, so a path swapped for a FIFO cannot block the read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            size = _size_of_regular(path, os.fstat(fd))
            if size > limit:
                raise FileRefused(path, f"file is {size} bytes, larger than the {limit}-byte limit")
            with open(fd, "rb", closefd=False) as fh:
                raw = fh.read(limit + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if len(raw) > limit:      # it grew while read
        raise FileRefused(path, f"file is larger than the {limit}-byte limit")
    return raw


def _size_of_regular(path: str | Path, info: os.stat_result) -> int:
    if stat.S_ISDIR(info.st_mode):
        raise FileRefused(path, "is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(path, "not a regular file (reading a FIFO or device could block forever)")
    return info.st_size


def _unreadable(path: str | Path, exc: OSError) -> FileRefused:
    if isinstance(exc, FileNotFoundError):
        return FileRefused(path, "file not found")
    return FileRefused(path, f"cannot read file: {exc.strerror or exc}")
