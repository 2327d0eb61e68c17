"""Per-component KS tests on principal components.

The components are the top eigenvectors of a covariance that does not depend on which rows are
reference and which are current (the pooled covariance of both sets), so under no drift the
labels stay exchangeable and each KS p-value stays exact. With a large reference the pooled
components are the reference's up to the shift.
"""

from __future__ import annotations

import numpy as np

from drift_decider.measure.metrics.ks import ks_test
from drift_decider.measure.metrics.linalg import descending_eigh
from drift_decider.measure.metrics.result import MetricResult


def principal_axes(cov: np.ndarray, k: int) -> np.ndarray:
    """(dim, k) top-k eigenvectors, signs fixed (largest |entry| positive) for reproducibility."""
    axes = descending_eigh(cov)[1][:, :k]
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    return axes * np.where(signs == 0, 1.0, signs)


def benjamini_hochberg(p_values: np.ndarray, alpha: float) -> int:
    """Number of hypotheses rejected by the Benjamini-Hochberg step-up procedure at level alpha."""
    k = len(p_values)
    ordered = np.sort(p_values)
    below = np.nonzero(ordered <= alpha * np.arange(1, k + 1) / k)[0]
    return int(below[-1] + 1) if below.size else 0


def pc_drift(x: np.ndarray, y: np.ndarray, axes: np.ndarray, centre: np.ndarray, *, alpha: float) -> MetricResult:
    """Share of components rejected after BH; p-value = min(1, k * min p) (Bonferroni)."""
    px, py = (x - centre) @ axes, (y - centre) @ axes
    k = axes.shape[1]
    results = [ks_test(px[:, j], py[:, j]) for j in range(k)]
    p_values = np.array([p for _, p in results])
    rejected = benjamini_hochberg(p_values, alpha)
    return MetricResult("pc_drift_share", rejected / k, min(1.0, k * float(p_values.min())),
                        detail={"components": k, "rejected": rejected, "alpha": alpha,
                                "rows_per_side": [len(x), len(y)],
                                "ks_statistics": [round(statistic, 6) for statistic, _ in results]})
