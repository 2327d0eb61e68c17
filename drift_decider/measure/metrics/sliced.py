"""Sliced Wasserstein distance: the mean 1-D Wasserstein-1 distance over random unit directions."""

from __future__ import annotations

import numpy as np

from drift_decider.measure.metrics.result import MetricResult


def random_directions(dim: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """(dim, count) unit vectors uniform on the sphere."""
    dirs = rng.standard_normal((dim, count))
    return dirs / np.linalg.norm(dirs, axis=0)


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W1 between the empirical distributions of each column of a (m, L) and b (n, L):
    the integral over u in (0, 1) of |F_a^-1(u) - F_b^-1(u)|, exact, all columns at once."""
    m, n = len(a), len(b)
    breaks = np.union1d(np.arange(1, m + 1) / m, np.arange(1, n + 1) / n)
    widths = np.diff(breaks, prepend=0.0)
    mid = breaks - widths / 2
    ia = np.minimum((mid * m).astype(np.int64), m - 1)
    ib = np.minimum((mid * n).astype(np.int64), n - 1)
    sa, sb = np.sort(a, axis=0), np.sort(b, axis=0)
    return widths @ np.abs(sa[ia] - sb[ib])


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, *, projections: int, rng: np.random.Generator) -> MetricResult:
    dirs = random_directions(x.shape[1], projections, rng)
    distances = wasserstein_1d(x.astype(np.float64) @ dirs, y.astype(np.float64) @ dirs)
    return MetricResult("sliced_wasserstein", float(distances.mean()),
                        detail={"projections": projections, "max": float(distances.max()),
                                "rows_per_side": [len(x), len(y)]})
