"""Shared pieces of the drift benchmarks: real embeddings, null splits, controlled shifts, timing.

Works in the project venv and in /work/bench-venv (numpy<2), with the repository on PYTHONPATH.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drift_decider.demo.movielens import item_factors  # noqa: E402
from drift_decider.cli.table import render_table  # noqa: E402


def real_pool(dim: int = 32) -> np.ndarray:
    """MovieLens item factors (~3,650 x dim): the real embeddings the null and power runs draw from."""
    return item_factors(dim=dim)


def null_split(pool: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """Two samples of n rows from the same pool: disjoint rows when the pool has 2n rows, otherwise
    both drawn with replacement (then both are i.i.d. from the pool's empirical distribution).
    Returns (reference, current, with_replacement)."""
    if 2 * n <= len(pool):
        idx = rng.permutation(len(pool))[:2 * n]
        return pool[idx[:n]], pool[idx[n:]], False
    return pool[rng.integers(0, len(pool), n)], pool[rng.integers(0, len(pool), n)], True


def shifted(x: np.ndarray, kind: str, strength: float, rng: np.random.Generator, ref: np.ndarray) -> np.ndarray:
    """A controlled shift of the current rows, scaled by the reference ``ref``:
    'mean' moves every row by ``strength`` x the reference's RMS spread (sqrt of total variance)
    along one fixed random direction; 'noise' adds gaussian noise of ``strength`` x each
    dimension's reference std; 'subpop' replaces a share ``strength`` of the rows by copies of
    rows from the tenth of the set nearest one random row (a sub-population grows)."""
    if kind == "mean":
        direction = np.random.default_rng(12345).standard_normal(x.shape[1])
        spread = float(np.sqrt(ref.astype(np.float64).var(axis=0).sum()))
        return (x + strength * spread * direction / np.linalg.norm(direction)).astype(np.float32)
    if kind == "noise":
        return (x + strength * ref.std(axis=0) * rng.standard_normal(x.shape)).astype(np.float32)
    if kind == "subpop":
        k = int(round(strength * len(x)))
        anchor = x[rng.integers(len(x))]
        near = np.argsort(np.linalg.norm(x - anchor, axis=1))[: max(len(x) // 10, 1)]
        out = x.copy()
        out[rng.choice(len(x), k, replace=False)] = x[rng.choice(near, k)]
        return out
    raise ValueError(f"unknown shift kind {kind!r}")


@contextmanager
def timer(out: dict, key: str):
    start = time.perf_counter()
    yield
    out[key] = time.perf_counter() - start


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """The project's terminal table, with floats to four significant digits."""
    print(render_table(headers, [[_fmt(c) for c in row] for row in rows]))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
