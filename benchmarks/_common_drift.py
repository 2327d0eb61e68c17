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

from drift_decider.datasets.movielens import item_factors  # noqa: E402


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


def shifted(x: np.ndarray, kind: str, strength: float, rng: np.random.Generator,
            pool_scale: np.ndarray) -> np.ndarray:
    """A controlled shift of current rows: 'mean' adds strength * per-dimension std along a fixed
    random unit direction, 'noise' adds gaussian noise of strength * per-dimension std, 'subpop'
    replaces a share ``strength`` of rows by copies of the rows nearest one random anchor row."""
    if kind == "mean":
        direction = np.random.default_rng(12345).standard_normal(x.shape[1])
        direction /= np.linalg.norm(direction)
        return (x + strength * float(pool_scale.mean()) * np.sqrt(x.shape[1]) * direction / np.sqrt(x.shape[1])
                ).astype(np.float32)
    if kind == "noise":
        return (x + strength * pool_scale * rng.standard_normal(x.shape)).astype(np.float32)
    if kind == "subpop":
        k = int(round(strength * len(x)))
        if k == 0:
            return x
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
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
