"""Sliced Wasserstein distance: the mean 1-D Wasserstein-1 distance over random unit directions."""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

from drift_decider.metrics.result import MetricResult


def random_directions(dim: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """(dim, count) unit vectors uniform on the sphere."""
    dirs = rng.standard_normal((dim, count))
    return dirs / np.linalg.norm(dirs, axis=0)


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, *, projections: int, rng: np.random.Generator) -> MetricResult:
    dirs = random_directions(x.shape[1], projections, rng)
    px, py = x @ dirs, y @ dirs
    distances = np.array([wasserstein_distance(px[:, j], py[:, j]) for j in range(projections)])
    return MetricResult("sliced_wasserstein", float(distances.mean()),
                        detail={"projections": projections, "max": float(distances.max()),
                                "rows_per_side": [len(x), len(y)]})
