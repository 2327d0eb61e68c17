"""Exact k-NN in blocks: time and memory of Jaccard@10 on a query sample, and of all structure metrics.

    PYTHONPATH=. python benchmarks/bench_knn.py [--items 100000] [--dim 128] [--queries 5000]

Target: 100,000 items x 128 dimensions, Jaccard@10 on 5,000 queries in <= 10 s on 2 cores.
Data: a seeded mixture of 500 Gaussian clusters (neighbourhoods like real embeddings have),
current = reference + 5 % relative noise. Wall and CPU seconds are both printed: on a shared
machine wall time includes waiting for the cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from typing import Callable

import numpy as np

from drift_decider.measure.metrics.knn import DEFAULT_BLOCK_BYTES, exact_knn, jaccard_rows
from drift_decider.measure.metrics.structure import structure_metrics


def clustered(n: int, dim: int, rng: np.random.Generator, clusters: int = 500) -> np.ndarray:
    centres = rng.standard_normal((clusters, dim))
    return (centres[rng.integers(clusters, size=n)] + 0.5 * rng.standard_normal((n, dim))).astype(np.float32)


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    reference = clustered(args.items, args.dim, rng)
    current = reference + 0.05 * np.linalg.norm(reference, axis=1, keepdims=True) * \
        rng.standard_normal(reference.shape).astype(np.float32) / np.sqrt(args.dim)
    ids = np.arange(args.items)
    queries = np.sort(rng.choice(args.items, size=args.queries, replace=False))

    def knn(space: np.ndarray) -> np.ndarray:
        return exact_knn(space, space[queries], args.k, metric="cosine", exclude=queries)[0]

    ref_nn, ref_wall, ref_cpu = timed(lambda: knn(reference))
    cur_nn, cur_wall, cur_cpu = timed(lambda: knn(current))
    jaccard, j_wall, j_cpu = timed(lambda: jaccard_rows(ref_nn, cur_nn).mean())
    results, s_wall, s_cpu = timed(lambda: structure_metrics(reference, ids, current, ids, k=args.k,
                                                              n_queries=args.queries, seed=args.seed))
    block_rows = max(1, DEFAULT_BLOCK_BYTES // (4 * args.items))
    rows = [
        (f"exact {args.k}-NN, reference ({args.queries} queries)", ref_wall, ref_cpu),
        (f"exact {args.k}-NN, current ({args.queries} queries)", cur_wall, cur_cpu),
        ("Jaccard of the neighbour lists", j_wall, j_cpu),
        (f"Jaccard@{args.k} total", ref_wall + cur_wall + j_wall, ref_cpu + cur_cpu + j_cpu),
        ("structure_metrics (all 7, incl. 5k-NN turnover, Procrustes)", s_wall, s_cpu),
    ]
    print(f"{args.items} items x {args.dim} d, {args.queries} queries, k={args.k}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"blocks of {block_rows} query rows ({block_rows * args.items * 4 / 2**20:.0f} MiB of scores)")
    print(f"{'step':62s} {'wall s':>8s} {'cpu s':>8s}")
    for name, wall, cpu in rows:
        print(f"{name:62s} {wall:8.2f} {cpu:8.2f}")
    values = {r.name: r.value for r in results}
    print(f"knn_jaccard {jaccard:.3f} (structure_metrics: {values['knn_jaccard']:.3f}), "
          f"knn_turnover {values['knn_turnover']:.4f} under 5 % noise")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB "
          f"(inputs: {2 * reference.nbytes / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
