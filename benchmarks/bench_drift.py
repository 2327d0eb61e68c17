"""drift-decider vs alibi-detect MMDDrift and Evidently's embedding-drift methods, and a scale run.

    PYTHONPATH=. /work/bench-venv/bin/python benchmarks/bench_drift.py            # peers, n = 2,000 and 10,000
    ... bench_drift.py --sizes 10000 --pairs shifted                             # one pair (~15 min at 10,000)
    PYTHONPATH=. /work/venv/bin/python benchmarks/bench_drift.py --scale          # 1,000,000 x 384 per side

Peers: same data (MovieLens item factors, dim 128, drawn with replacement), no-drift and shifted
current sets, 100 permutations everywhere, CPU only, 2 threads. Prints seconds, speed-up of our
MMD over alibi's at the same permutation count, p-values or scores and drift decisions.
Scale: writes two float32 .npy files to --scale-dir in chunks, then runs measure() on their memory
maps and `drift-decider measure` on the files, each as its own process, and prints a table of wall
time and peak RSS (ru_maxrss of exactly that process, as /usr/bin/time reports; _peak_rss.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from _common_drift import print_table, real_pool, shifted, timer
from _peak_rss import run_measured
from drift_decider.measure.distribution import MeasureOptions, measure
from drift_decider.measure.metrics.mmd import mmd2_test

ALPHA = 0.05
PERMUTATIONS = 100
SCALE_DIR = Path("/tmp/drift-decider-scale")


def _data(n: int, drift: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    pool = real_pool(dim=128)
    rng = np.random.default_rng(seed)
    ref = pool[rng.integers(0, len(pool), n)]
    cur = pool[rng.integers(0, len(pool), n)]
    if drift:
        cur = shifted(cur, "mean", 0.03, rng, ref)
    return ref, cur


def _ours(ref, cur, rows: list) -> float:
    n = len(ref)
    t: dict[str, float] = {}
    with timer(t, "suite"):
        report = measure(ref, cur, seed=0, options=MeasureOptions(mmd_permutations=PERMUTATIONS))
    values = report.values()
    rows.append(["drift-decider measure() (all metrics)", t["suite"], "",
                 f"mmd2 p={values['mmd2.p_value']:.3f}", values["mmd2.p_value"] <= ALPHA])
    with timer(t, "mmd"):
        capped = mmd2_test(ref[:2000], cur[:2000], permutations=PERMUTATIONS, rng=np.random.default_rng(0))
    rows.append([f"drift-decider mmd2 ({min(n, 2000)}/side)", t["mmd"], "", f"p={capped.p_value:.3f}",
                 capped.p_value <= ALPHA])
    if n > 2000:
        with timer(t, "full"):
            full = mmd2_test(ref, cur, permutations=PERMUTATIONS, rng=np.random.default_rng(0))
        rows.append([f"drift-decider mmd2 ({n}/side)", t["full"], "", f"p={full.p_value:.3f}",
                     full.p_value <= ALPHA])
        return t["full"]
    return t["mmd"]


def _alibi(ref, cur, rows: list, ours_seconds: float) -> None:
    try:
        import torch
        from alibi_detect.cd import KSDrift, MMDDrift
    except ImportError as exc:
        rows.append(["alibi-detect", "", "", f"not installed ({exc.name})", ""])
        return
    torch.set_num_threads(2)
    torch.manual_seed(0)
    t: dict[str, float] = {}
    try:
        with timer(t, "mmd"):
            detector = MMDDrift(ref, backend="pytorch", p_val=ALPHA, n_permutations=PERMUTATIONS, device="cpu")
            pred = detector.predict(cur)["data"]
        rows.append(["alibi-detect MMDDrift (pytorch)", t["mmd"], t["mmd"] / ours_seconds,
                     f"p={pred['p_val']:.3f}", bool(pred["is_drift"])])
    except (RuntimeError, MemoryError) as exc:   # torch reports allocation failures as RuntimeError
        rows.append(["alibi-detect MMDDrift (pytorch)", "failed", "", type(exc).__name__ + ": " + str(exc)[:60], ""])
    with timer(t, "ks"):
        pred = KSDrift(ref, p_val=ALPHA).predict(cur)["data"]
    rows.append(["alibi-detect KSDrift (Bonferroni)", t["ks"], "", f"min p={float(np.min(pred['p_val'])):.3g}",
                 bool(pred["is_drift"])])


def _evidently(ref, cur, rows: list) -> None:
    try:
        import pandas as pd
        from evidently.legacy.metrics.data_drift import embedding_drift_methods as edm
    except ImportError as exc:
        rows.append(["Evidently", "", "", f"not installed ({exc.name})", ""])
        return
    methods = {"mmd (bootstrap)": edm.mmd(bootstrap=True), "model (bootstrap)": edm.model(bootstrap=True),
               "distance (bootstrap)": edm.distance(bootstrap=True), "ratio": edm.ratio()}
    for name, method in methods.items():
        t: dict[str, float] = {}
        try:
            with timer(t, "x"):
                score, drift, _ = method(pd.DataFrame(cur), pd.DataFrame(ref))
            rows.append([f"Evidently {name}", t["x"], "", f"score={score:.4g}", bool(drift)])
        except MemoryError as exc:
            rows.append([f"Evidently {name}", "failed", "", f"MemoryError {exc}"[:60], ""])


def peers(sizes: list[int], pairs: list[str]) -> None:
    for n in sizes:
        for drift in (pair == "shifted" for pair in pairs):
            ref, cur = _data(n, drift, seed=n)
            rows: list[list[object]] = []
            ours_seconds = _ours(ref, cur, rows)
            _alibi(ref, cur, rows, ours_seconds)
            _evidently(ref, cur, rows)
            title = "mean shift 0.03 spread" if drift else "no drift"
            print(f"\n== n = {n} per side, d = 128, {title}; x = alibi MMD seconds / our mmd2 seconds "
                  f"at the same rows and {PERMUTATIONS} permutations")
            print_table(["method", "seconds", "x", "result", f"drift@{ALPHA}"], rows)
            sys.stdout.flush()


# -- scale ------------------------------------------------------------------------------------
_WRITER = """
import sys, numpy as np
path, rows, dim, seed, shift = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
rng = np.random.default_rng(seed)
mixing = np.random.default_rng(7).standard_normal((dim, dim)).astype(np.float32) / np.sqrt(dim)
out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
for start in range(0, rows, 100_000):
    block = rng.standard_normal((min(100_000, rows - start), dim), dtype=np.float32) @ mixing
    out[start:start + len(block)] = block + np.float32(shift)
out.flush()
"""

_LIBRARY = """
import json, sys, numpy as np
from drift_decider.measure.distribution import measure
ref = np.load(sys.argv[1], mmap_mode="r"); cur = np.load(sys.argv[2], mmap_mode="r")
print(json.dumps(measure(ref, cur, seed=0).values()))
"""


def scale(rows: int, dim: int, folder: Path) -> None:
    """measure() on the memory maps, and `drift-decider measure` on the same files as users run it
    (the command validates both files first), each as its own process."""
    folder.mkdir(parents=True, exist_ok=True)
    ref_path, cur_path = folder / f"ref_{rows}x{dim}.npy", folder / f"cur_{rows}x{dim}.npy"
    for path, seed, shift in ((ref_path, 1, 0.0), (cur_path, 2, 0.01)):
        if not path.exists():
            print(f"writing {path} ...", file=sys.stderr)
            subprocess.run([sys.executable, "-c", _WRITER, str(path), str(rows), str(dim), str(seed), str(shift)],
                           check=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    runs = {"measure() on the memory maps (library)": [sys.executable, "-c", _LIBRARY, ref_path, cur_path],
            "drift-decider measure --json (CLI)": [sys.executable, "-m", "drift_decider", "measure", "--reference",
                                                   ref_path, "--current", cur_path, "--json"]}
    table, values = [], {}
    for name, command in runs.items():
        run = run_measured(command, env=env)
        if run.returncode != 0:
            raise SystemExit(f"{name} exited {run.returncode}:\n{run.stderr[-2000:]}")
        table.append([name, run.seconds, run.peak_mb / 1024])
        values[name] = json.loads(run.stdout)
    print(f"scale: {rows:,} x {dim} float32 reference vs current (.npy, memory-mapped), {os.cpu_count()} cores")
    print_table(["process", "wall seconds (incl. imports)", "peak RSS GB (ru_maxrss)"], table)
    print(json.dumps({k: round(v, 5) for k, v in values["measure() on the memory maps (library)"].items()}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", action="store_true", help="run the 1M x 384 scale test instead of peers")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--scale-dir", type=Path, default=SCALE_DIR, help="where the scale run's .npy files live")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 10_000])
    parser.add_argument("--pairs", nargs="+", choices=["no-drift", "shifted"], default=["no-drift", "shifted"],
                        help="which reference/current pairs to run at each size (each costs minutes at 10,000)")
    args = parser.parse_args()
    if args.scale:
        scale(args.rows, args.dim, args.scale_dir)
    else:
        peers(args.sizes, args.pairs)
