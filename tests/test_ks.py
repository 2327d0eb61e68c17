"""The KS p-values of pc_drift_share and norm_ks: exact where SciPy's is, and no fallback warnings.

SciPy's ks_2samp on method="auto" printed "Exact calculation unsuccessful. Switching to
method=asymp" in a `check` of a window close to its reference (5,000 rows per side).
"""

from __future__ import annotations

import warnings
from math import gcd

import numpy as np
import pytest
from scipy.stats._stats_py import _attempt_exact_2kssamp

from drift_decider.measure.metrics.ks import EXACT_MAX_CELLS, exact_p_value, ks_test
from drift_decider.measure.metrics.norms import norm_ks
from drift_decider.measure.metrics.pc_ks import pc_drift, principal_axes


@pytest.mark.parametrize("n, m", [(10, 10), (13, 13), (10, 37), (50, 50), (100, 90), (300, 250), (7, 300)])
def test_exact_p_value_is_scipys_exact_one_wherever_scipy_computes_it(n: int, m: int) -> None:
    g, compared = gcd(n, m), 0
    lcm = n // g * m
    for h in range(1, lcm + 1, max(1, lcm // 150)):
        done, _, scipy_p = _attempt_exact_2kssamp(n, m, g, h / lcm, "two-sided")
        if done and scipy_p > 1e-8:
            assert exact_p_value(n, m, h / lcm) == pytest.approx(scipy_p, rel=1e-7), (n, m, h)
            compared += 1
    assert compared >= 5


def _near_copies(rows: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((rows, dim))
    return x, x + 1e-4 * np.random.default_rng(1).standard_normal((rows, dim))


@pytest.mark.parametrize("rows", [13, 60, 5_000])
def test_samples_that_agree_give_p_near_one_without_a_warning(rows: int) -> None:
    x, y = _near_copies(rows, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        statistic, p_value = ks_test(x[:, 0], y[:, 0])
        components = pc_drift(x, y, principal_axes(np.cov(x, rowvar=False), 3), x.mean(axis=0), alpha=0.05)
        norms = norm_ks(x, y)
    assert statistic < 4 / rows and p_value > 0.99
    assert components.value == 0 and norms.p_value > 0.99


def test_large_samples_use_the_asymptotic_p_value_and_still_find_a_shift() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(2_000), rng.standard_normal(2_000) + 0.2
    assert len(x) * len(y) > EXACT_MAX_CELLS
    statistic, p_value = ks_test(x, y)
    assert statistic > 0.05 and p_value < 1e-6
