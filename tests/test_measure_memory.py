"""`drift-decider measure` on memory-mapped .npy files: resident memory must not grow with the files.

Reading a memory map keeps every page it touched resident until the process drops it, so a pass
over a file (validation) or rows spread over it (the sketch pilot) can hold the whole file: two
1M x 384 inputs held 3.4 GB. Peaks are the kernel's own: VmHWM in-process (reset through
/proc/self/clear_refs) and ru_maxrss of the CLI process (what /usr/bin/time reports, measured by
benchmarks/_peak_rss.py, which the scale benchmark uses too).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from drift_decider.inputs.embeddings import load_embeddings
from drift_decider.measure.sketch import SketchSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _peak_rss import run_measured  # noqa: E402

DIM = 384
MB = 1024 ** 2

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux /proc and ru_maxrss in KB")


def _write(path: Path, rows: int, seed: int) -> Path:
    """A float32 .npy written block by block, as a real export would be."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, DIM))
    for start in range(0, rows, 50_000):
        out[start:start + 50_000] = rng.standard_normal((min(50_000, rows - start), DIM), dtype=np.float32)
    out.flush()
    del out
    return path


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith(key + ":"))
    return int(line.split()[1]) / 1024


def _peak_growth_mb(action: Callable[[], object]) -> float:
    """How far this process's peak RSS rose above its RSS while ``action`` ran."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")       # resets VmHWM to the current RSS
    except OSError as exc:
        pytest.skip(f"cannot reset the peak RSS here: {exc}")
    before = _status_mb("VmRSS")
    action()
    return _status_mb("VmHWM") - before


def test_validating_and_piloting_a_memory_map_do_not_hold_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "items.npy", 200_000, seed=0)
    size_mb = path.stat().st_size / MB
    loaded: list = []
    assert _peak_growth_mb(lambda: loaded.append(load_embeddings(path))) < size_mb / 4
    vectors = loaded[0].vectors
    SketchSpec.from_pilot(np.asarray(vectors[:100]), seed=0)    # imports and caches off the books
    resident = _status_mb("RssFile")
    assert _peak_growth_mb(lambda: SketchSpec.from_pilot(vectors, seed=0)) < size_mb / 4
    assert _status_mb("RssFile") - resident < 2, "the pilot's rows stayed resident"


def _cli_peak_mb(reference: Path, current: Path) -> float:
    """Peak RSS of `drift-decider measure` as users run it: its own process, not a child of this one."""
    run = run_measured([sys.executable, "-m", "drift_decider", "measure", "--reference", reference,
                        "--current", current, "--json"])
    assert run.returncode == 0, run.stderr
    return run.peak_mb


@pytest.mark.slow
def test_measure_cli_peak_rss_does_not_grow_with_the_input_files(tmp_path: Path) -> None:
    peaks, sizes = [], []
    for rows in (100_000, 300_000):
        pair = [_write(tmp_path / f"{side}-{rows}.npy", rows, seed=seed) for seed, side in enumerate(("ref", "cur"))]
        try:
            peaks.append(_cli_peak_mb(*pair))
            sizes.append(sum(path.stat().st_size for path in pair) / MB)
        finally:
            for path in pair:
                path.unlink()
    # 586 MB more input: before the fix the peak rose by 576-590 MB, after it by 3-31 MB
    assert peaks[1] - peaks[0] < (sizes[1] - sizes[0]) / 4, f"peaks {peaks} MB for inputs {sizes} MB"
