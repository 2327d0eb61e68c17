"""Seeded row samples: the same data and seed pick the same rows, so every number is reproducible."""

from __future__ import annotations

import numpy as np


def seeded_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """A sorted seeded sample of at most ``limit`` row numbers out of ``n`` (all of them when ``n <= limit``)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
