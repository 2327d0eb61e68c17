"""Wall time and peak RSS of one command as its own process, the number /usr/bin/time -v reports.

Why a launcher in between: Linux carries a process's high-water mark into its children's
ru_maxrss across fork and exec, so a child of a big process (a test runner, a script that just
wrote 3 GB) reads at least that parent's peak. A bare `python -c` launcher is the parent the
measured command inherits from, and it reports wait4's ru_maxrss of exactly that command.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"seconds": time.perf_counter() - start, "maxrss_kb": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status)}, fh)
"""


@dataclass(frozen=True)
class ProcessPeak:
    returncode: int
    seconds: float
    peak_mb: float     # ru_maxrss, KB on Linux
    stdout: str
    stderr: str


def run_measured(command: list[object], *, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None) -> ProcessPeak:
    """Run ``command`` to completion under the launcher; its output is captured."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        done = subprocess.run([sys.executable, "-c", _LAUNCHER, str(report), *map(str, command)],
                              capture_output=True, text=True, env=env, cwd=cwd)
        measured = json.loads(report.read_text())
    return ProcessPeak(measured["returncode"], measured["seconds"], measured["maxrss_kb"] / 1024,
                       done.stdout, done.stderr)
