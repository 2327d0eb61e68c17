"""What every command prints besides its result: help, stderr when piped, JSON times.

The exit-code legend is shown once, at `drift-decider --help`; each command names its own codes
in one line. Progress bars are drawn only on a terminal (a CI log piped from stderr collected
every redrawn frame). `--json` times are ISO 8601 with a `T` and an offset.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import click
import numpy as np

from drift_decider.cli.main import cli
from support import POLICY, cli_process, movielens_items, register_with_reference, run_cli, write_items

LEGEND_ONLY = "an earlier window of the same model version is still being checked"
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, path + (name,))
        else:
            yield path + (name,)


def test_the_exit_code_legend_is_shown_once_at_the_top_and_each_command_names_its_codes() -> None:
    top = run_cli("--help").output
    assert LEGEND_ONLY in top and "spooled its own" in top and "lost the alias" in top
    helps = {path: run_cli(*path, "--help").output for path in _commands(cli)}
    assert ("check",) in helps and ("reference", "set") in helps and ("policy", "test") in helps
    for path, text in helps.items():
        assert LEGEND_ONLY not in text, f"{' '.join(path)} --help repeats the legend"
        assert " ".join(text.split()).count("Exit codes") == 1, f"{' '.join(path)} --help names no exit codes"
        assert "%%" not in text, f"{' '.join(path)} --help prints an argparse-style %% (click does not format help)"
    flat = {path[-1]: " ".join(text.split()) for path, text in helps.items()}
    assert "3 decision not `none`" in flat["check"] and "4 a concurrent" in flat["check"]
    assert "3 " not in flat["measure"].split("Exit codes:")[1] and "4 " not in flat["measure"].split("Exit codes:")[1]


def _measure_command(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    for side in ("ref", "cur"):
        np.save(tmp_path / f"{side}.npy", rng.standard_normal((3_000, 16)).astype(np.float32))
    return [sys.executable, "-m", "drift_decider", "measure", "--reference", str(tmp_path / "ref.npy"),
            "--current", str(tmp_path / "cur.npy")]


def test_progress_bars_are_drawn_on_a_terminal_and_never_into_a_pipe(tmp_path: Path) -> None:
    command = _measure_command(tmp_path)
    piped = subprocess.run(command, capture_output=True, text=True)
    assert piped.returncode == 0, piped.stderr
    assert "profiling" not in piped.stderr and "\r" not in piped.stderr

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # a terminal has a size
    drawn: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(controller, drawn))
    reader.start()
    on_tty = subprocess.run(command, stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    reader.join(timeout=60)
    os.close(controller)
    assert on_tty.returncode == 0
    assert b"profiling reference" in b"".join(drawn)


def _drain(fd: int, into: list[bytes]) -> None:
    """Read a terminal's output until its other side is closed (then the read fails with EIO)."""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        into.append(chunk)


def test_a_piped_check_prints_no_bars_or_warnings_and_history_json_has_iso_times(tmp_path, sqlite_uri) -> None:
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    # a window close to its reference: SciPy's exact KS used to fall back with a RuntimeWarning here
    nudge = 1e-4 * np.random.default_rng(1).standard_normal(vectors.shape)
    close = write_items(tmp_path / "close.npz", ids, vectors + nudge)
    process = cli_process("check", "--model", "recsys", "--version", version, "--current", close, "--policy", POLICY,
                          "--window-id", "day-01", "--window-end", "2026-03-01T06:30:00+02:00",
                          "--tracking-uri", sqlite_uri)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert "Warning" not in stderr and "\r" not in stderr and "profiling" not in stderr, stderr

    rows = json.loads(run_cli("history", "--model", "recsys", "--json", "--tracking-uri", sqlite_uri).stdout)
    assert [row["window_end"] for row in rows] == ["2026-03-01T04:30:00+00:00"]
    assert all(ISO_WITH_OFFSET.match(row["window_end"]) for row in rows)
