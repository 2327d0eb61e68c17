"""Detection rate under controlled shifts, drift-decider's tests beside alibi-detect's MMDDrift and KSDrift.

    PYTHONPATH=. /work/bench-venv/bin/python benchmarks/power.py [--trials 20] [--sizes 10 100 1000 10000]

Data: MovieLens item factors (dim 32); reference and current drawn from the same items (with
replacement when 2n exceeds the pool), then the current set is shifted: 'mean' (0.05 x RMS
spread along one direction), 'noise' (gaussian, 0.3 x per-dimension std), 'subpop' (20% of rows
replaced by rows of one neighbourhood); 'none' shows the false-positive rate. A test detects when
its p-value <= 0.05. alibi's MMDDrift (pytorch, 100 permutations) copies its kernel matrix per
permutation and is run only up to --alibi-mmd-max rows per side.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from _common_drift import null_split, print_table, real_pool, shifted
from drift_decider.measure.distribution import TESTS, MeasureOptions, measure

ALPHA = 0.05
SHIFTS = {"none": 0.0, "mean": 0.05, "noise": 0.3, "subpop": 0.2}
PERMUTATIONS, DIM = 100, 32
SETTINGS = {"alpha": ALPHA, "permutations": PERMUTATIONS, "dim": DIM, "tests": list(TESTS)}   # of a --cache


def _alibi(ref: np.ndarray, cur: np.ndarray, with_mmd: bool, seed: int) -> dict[str, bool]:
    import torch
    from alibi_detect.cd import KSDrift, MMDDrift
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    out = {"alibi KSDrift": bool(KSDrift(ref, p_val=ALPHA).predict(cur)["data"]["is_drift"])}
    if with_mmd:
        detector = MMDDrift(ref, backend="pytorch", p_val=ALPHA, n_permutations=PERMUTATIONS, device="cpu")
        out["alibi MMDDrift"] = bool(detector.predict(cur)["data"]["is_drift"])
    return out


def _trial(pool: np.ndarray, kind: str, strength: float, n: int, trial: int, alibi_mmd: bool,
           have_alibi: bool) -> dict[str, bool]:
    """One seeded trial: every test's decision on the same reference/current pair."""
    rng = np.random.default_rng([n, trial, len(kind)])
    ref, cur, _ = null_split(pool, n, rng)
    if kind != "none":
        cur = shifted(cur, kind, strength, rng, ref)
    values = measure(ref, cur, seed=trial, options=MeasureOptions(mmd_permutations=PERMUTATIONS)).values()
    decisions = {name: values.get(f"{name}.p_value", 1.0) <= ALPHA for name in TESTS}
    if have_alibi:
        decisions.update(_alibi(ref, cur, with_mmd=alibi_mmd, seed=trial))
    return decisions


def _load_cache(path: Path | None) -> dict[str, dict[str, bool]]:
    """Decisions of trials an earlier (possibly interrupted) run finished, by trial key. A cache
    written under other settings is refused; a line cut short by a killed run is skipped."""
    if path is None or not path.exists():
        return {}
    cache = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "settings" in entry:
            if entry["settings"] != SETTINGS:
                raise SystemExit(f"{path} holds trials run with {entry['settings']}, not {SETTINGS}")
        else:
            cache[entry["key"]] = entry["decisions"]
    return cache


def _append(path: Path, entry: dict) -> None:
    """One JSON line; the settings line first in a new file, and a newline after a cut-short line."""
    head = "" if path.exists() else json.dumps({"settings": SETTINGS}) + "\n"
    if path.exists() and not path.read_bytes().endswith(b"\n"):
        head = "\n"
    with path.open("a") as out:
        out.write(head + json.dumps(entry) + "\n")


def run(trials: int, sizes: list[int], alibi_mmd_max: int, weaker: float, kinds: list[str],
        cache_path: Path | None) -> None:
    """Trials run round by round (trial 0 of every cell, then trial 1, ...), so an interrupted run
    leaves every cell with nearly the same count; with ``cache_path`` each finished trial is
    appended there and a rerun picks up where the last one stopped (the data and seeds depend only
    on the trial key)."""
    pool = real_pool(DIM)
    try:
        import alibi_detect  # noqa: F401
        have_alibi = True
    except ImportError:
        have_alibi = False
    columns = [*TESTS, "alibi MMDDrift", "alibi KSDrift"]
    cells = [(kind, SHIFTS[kind] / weaker, n) for kind in kinds for n in sizes]
    cache = _load_cache(cache_path)
    results: dict[tuple[str, float, int], list[dict[str, bool]]] = {cell: [] for cell in cells}
    for trial in range(trials):
        for kind, strength, n in cells:
            key = f"{kind}|{strength}|{n}|{trial}"
            needed = set(TESTS) | ({"alibi KSDrift"} if have_alibi else set())
            needed |= {"alibi MMDDrift"} if have_alibi and n <= alibi_mmd_max else set()
            decisions = cache.get(key)
            if decisions is None or not needed <= decisions.keys():
                decisions = _trial(pool, kind, strength, n, trial, n <= alibi_mmd_max, have_alibi)
                if cache_path is not None:
                    _append(cache_path, {"key": key, "decisions": decisions})
            decisions = {name: hit for name, hit in decisions.items() if name in needed}
            results[(kind, strength, n)].append(decisions)
            print(f"{kind} n={n} trial {trial}: " + ", ".join(f"{k}={int(v)}" for k, v in decisions.items()),
                  file=sys.stderr, flush=True)
    rows = []
    for (kind, strength, n), outcomes in results.items():
        counts = [[d[c] for d in outcomes if c in d] for c in columns]
        rows.append([kind, strength, n] + [f"{sum(hit) / len(hit):.2f}" if hit else "-" for hit in counts])
    print(f"\nDetection rate at alpha={ALPHA}, {trials} trials per cell (MovieLens item factors, dim {DIM})")
    print_table(["shift", "strength", "n/side", *columns], rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--alibi-mmd-max", type=int, default=1000)
    parser.add_argument("--shifts", nargs="+", choices=list(SHIFTS), default=list(SHIFTS))
    parser.add_argument("--weaker", type=float, default=1.0,
                        help="divide every shift's strength by this (weak shifts show what all rows buy at large n)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="JSON-lines file of finished trials: appended to, and reused by a rerun with the "
                             "same settings (a cache belongs to one version of the code: delete it after a change)")
    args = parser.parse_args()
    run(args.trials, args.sizes, args.alibi_mmd_max, args.weaker, args.shifts, args.cache)
