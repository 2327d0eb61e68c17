"""Norm shift: two-sample KS test on the L2 norms of the rows."""

from __future__ import annotations

import numpy as np

from drift_decider.measure.metrics.ks import ks_test
from drift_decider.measure.metrics.result import MetricResult


def norm_ks(x: np.ndarray, y: np.ndarray) -> MetricResult:
    nx = np.linalg.norm(x.astype(np.float64), axis=1)
    ny = np.linalg.norm(y.astype(np.float64), axis=1)
    statistic, p_value = ks_test(nx, ny)
    return MetricResult("norm_ks", statistic, p_value,
                        detail={"rows_per_side": [len(x), len(y)],
                                "median_norm": [float(np.median(nx)), float(np.median(ny))]})
