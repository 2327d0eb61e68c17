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
import sys

import numpy as np

from _common_drift import null_split, print_table, real_pool, shifted
from drift_decider.measure import TESTS, MeasureOptions, measure

ALPHA = 0.05
SHIFTS = {"none": 0.0, "mean": 0.05, "noise": 0.3, "subpop": 0.2}


def _alibi(ref: np.ndarray, cur: np.ndarray, with_mmd: bool, seed: int) -> dict[str, bool]:
    import torch
    from alibi_detect.cd import KSDrift, MMDDrift
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    out = {"alibi KSDrift": bool(KSDrift(ref, p_val=ALPHA).predict(cur)["data"]["is_drift"])}
    if with_mmd:
        detector = MMDDrift(ref, backend="pytorch", p_val=ALPHA, n_permutations=100, device="cpu")
        out["alibi MMDDrift"] = bool(detector.predict(cur)["data"]["is_drift"])
    return out


def run(trials: int, sizes: list[int], alibi_mmd_max: int, weaker: float, kinds: list[str]) -> None:
    pool = real_pool()
    try:
        import alibi_detect  # noqa: F401
        have_alibi = True
    except ImportError:
        have_alibi = False
    columns = [*TESTS, "alibi MMDDrift", "alibi KSDrift"]
    rows = []
    for kind, strength in ((k, SHIFTS[k] / weaker) for k in kinds):
        for n in sizes:
            hits = dict.fromkeys(columns, 0)
            runs = dict.fromkeys(columns, 0)
            for trial in range(trials):
                rng = np.random.default_rng([n, trial, len(kind)])
                ref, cur, _ = null_split(pool, n, rng)
                if kind != "none":
                    cur = shifted(cur, kind, strength, rng, ref)
                values = measure(ref, cur, seed=trial, options=MeasureOptions(mmd_permutations=100)).values()
                decisions = {name: values.get(f"{name}.p_value", 1.0) <= ALPHA for name in TESTS}
                if have_alibi:
                    decisions.update(_alibi(ref, cur, with_mmd=n <= alibi_mmd_max, seed=trial))
                for name, hit in decisions.items():
                    hits[name] += hit
                    runs[name] += 1
                print(f"{kind} n={n} trial {trial}: " + ", ".join(f"{k}={int(v)}" for k, v in decisions.items()),
                      file=sys.stderr, flush=True)
            rows.append([kind, strength, n] + [f"{hits[c] / runs[c]:.2f}" if runs[c] else "-" for c in columns])
            print(f"done {kind} n={n}", flush=True)
    print(f"\nDetection rate at alpha={ALPHA}, {trials} trials per cell (MovieLens item factors, dim 32)")
    print_table(["shift", "strength", "n/side", *columns], rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--alibi-mmd-max", type=int, default=1000)
    parser.add_argument("--shifts", nargs="+", choices=list(SHIFTS), default=list(SHIFTS))
    parser.add_argument("--weaker", type=float, default=1.0,
                        help="divide every shift's strength by this (weak shifts show what all rows buy at large n)")
    args = parser.parse_args()
    run(args.trials, args.sizes, args.alibi_mmd_max, args.weaker, args.shifts)
