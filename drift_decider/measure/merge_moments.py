"""Chan's parallel formulas: the moments of two row sets together, from each set's moments.

Shared by the profile's per-half moments and the sketches' feature moments, which both merge
summaries of chunks and of separately profiled parts without revisiting rows.
"""

from __future__ import annotations

import numpy as np


def combine_moments(n_a: int, mean_a: np.ndarray, m2_a: np.ndarray,
                    n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and centred second moment of two row sets together (Chan et al.)."""
    n = n_a + n_b
    if n_a == 0 or n_b == 0:
        return (mean_b, m2_b) if n_a == 0 else (mean_a, m2_a)
    delta = mean_b - mean_a
    return mean_a + delta * (n_b / n), m2_a + m2_b + np.outer(delta, delta) * (n_a * n_b / n)
