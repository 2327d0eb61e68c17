"""False-positive rate of every p-value of measure() under no drift, on real embeddings.

Two samples of the same MovieLens item factors (random split; with replacement when 2n exceeds the
~3,650 items), many seeded trials per size; prints the share of p-values <= alpha per test with a
binomial 99% interval. Usage: python benchmarks/calibration.py [--trials 500] [--sizes 50 500 5000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.stats import binomtest

from _common_drift import null_split, print_table, real_pool
from drift_decider.measure.distribution import TESTS, measure


def run(trials: int, sizes: list[int], alpha: float) -> None:
    pool = real_pool()
    rows = []
    for n in sizes:
        rejections = {name: 0 for name in TESTS}
        start = time.perf_counter()
        replacement = False
        for trial in range(trials):
            rng = np.random.default_rng([n, trial])
            ref, cur, replacement = null_split(pool, n, rng)
            values = measure(ref, cur, seed=trial).values()
            for name in TESTS:
                rejections[name] += values[f"{name}.p_value"] <= alpha
            if (trial + 1) % 50 == 0:
                print(f"n={n} after {trial + 1} trials: " + ", ".join(
                    f"{k} {v / (trial + 1):.3f}" for k, v in rejections.items()), file=sys.stderr, flush=True)
        seconds = time.perf_counter() - start
        for name in TESTS:
            ci = binomtest(rejections[name], trials).proportion_ci(0.99)
            rows.append([n, "yes" if replacement else "no", name, rejections[name] / trials,
                         f"[{ci.low:.3f}, {ci.high:.3f}]", trials, f"{seconds / trials:.3f}"])
    print(f"FPR at alpha={alpha} under no drift (MovieLens item factors, dim 32)")
    print_table(["n/side", "w/ repl.", "test", "FPR", "99% CI", "trials", "s/trial"], rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 5000])
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    run(args.trials, args.sizes, args.alpha)
