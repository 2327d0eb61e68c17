"""Two-sample Kolmogorov-Smirnov test whose p-value never falls back behind the caller's back.

SciPy's ks_2samp, left on method="auto", tries its exact distribution up to 10,000 rows per side.
For equal sizes its two-sided formula (an alternating sum) rounds to just above 1 when the samples
agree (13 rows already; at 5,000 rows for D up to 0.003), so SciPy gives up, returns the
asymptotic value and prints a RuntimeWarning: a `check` of a window close to its reference printed
one. Here small samples get the exact p-value by summing the chances of merge orders (positive
terms only, nothing to cancel), and larger samples SciPy's asymptotic one, chosen up front.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp

EXACT_MAX_CELLS = 100_000   # n x m up to which the exact p-value is computed (~320 rows per side)


def ks_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(statistic, two-sided p-value) of the two-sample KS test between 1-D samples."""
    result = ks_2samp(x, y, method="asymp")
    statistic = float(result.statistic)
    if len(x) * len(y) <= EXACT_MAX_CELLS:
        return statistic, exact_p_value(len(x), len(y), statistic)
    return statistic, float(result.pvalue)


def exact_p_value(n: int, m: int, statistic: float) -> float:
    """P(D >= statistic) under the null for samples of n and m distinct values: one minus the chance
    that a uniformly random merge order keeps the ECDF gap |i/n - j/m| below the statistic
    throughout. Walked one anti-diagonal (i + j = s) at a time; ``inside[i]`` is the chance of
    reaching (i, s - i) without touching the bound."""
    bound = round(statistic * n * m)     # |i m - j n| < bound: strictly inside, in exact integers
    if bound <= 0:
        return 1.0
    i = np.arange(n + 1)
    inside = (i == 0).astype(np.float64)
    for s in range(1, n + m + 1):
        j = s - i
        remaining = n + m - s + 1        # values not yet placed before this step
        from_x = np.concatenate([[0.0], inside[:-1] * (n - i[1:] + 1)])
        from_y = inside * (m - j + 1)
        keep = (j >= 0) & (j <= m) & (np.abs(i * m - j * n) < bound)
        inside = np.where(keep, (from_x + from_y) / remaining, 0.0)
    return float(min(1.0, max(0.0, 1.0 - inside[n])))
