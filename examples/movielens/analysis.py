"""What the replay shows: significant quality drops, drift/quality correlation, warning lead time.

The definition of a "significant quality drop" is fixed here, before looking at any result:
the baseline of a model version is its recall@10 pooled over the first ``BASELINE_WINDOWS`` windows
after its cutoff (out-of-sample, as served); a later window drops significantly when its mean
recall is below the baseline by more than ``DROP_Z`` combined standard errors (one-sided z test
on per-request recalls, ~2.3% false alarms per window under no change).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

BASELINE_WINDOWS = 2
DROP_Z = 2.0
WARNING_ACTIONS = ("retrain", "recalibrate")
# A policy-free drift alarm, fixed up front: the domain classifier's test on the served queries
# against the validation queries, at the default policy's significance level.
ALARM_METRIC = "queries.domain_classifier.auc.p_value"
ALARM_ALPHA = 0.01


@dataclass(frozen=True)
class QualityPoint:
    """Recall@10 of one model version on one window, with its standard error."""

    window: int
    mean: float
    se: float
    n: int


def quality_point(window: int, recalls: np.ndarray) -> QualityPoint:
    values = recalls[~np.isnan(recalls)]
    if len(values) < 2:
        return QualityPoint(window, float("nan"), float("nan"), len(values))
    return QualityPoint(window, float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))),
                        len(values))


@dataclass(frozen=True)
class Baseline:
    mean: float
    se: float


def baseline_from_points(points: list[QualityPoint]) -> Baseline:
    """Recall pooled over the first ``BASELINE_WINDOWS`` windows of a version (exact pooled variance)."""
    first = [p for p in points[:BASELINE_WINDOWS] if p.n >= 2]
    n = np.array([p.n for p in first], dtype=float)
    means = np.array([p.mean for p in first])
    variances = np.array([p.se ** 2 * p.n for p in first])  # se = sd / sqrt(n)
    total = n.sum()
    mean = float((n * means).sum() / total)
    pooled_var = ((n - 1) * variances + n * (means - mean) ** 2).sum() / (total - 1)
    return Baseline(mean, float(np.sqrt(pooled_var / total)))


def drop_z(point: QualityPoint, base: Baseline) -> float:
    """How many combined standard errors ``point`` lies below the baseline (positive = worse)."""
    return (base.mean - point.mean) / float(np.hypot(base.se, point.se))


def first_drop(points: list[QualityPoint], base: Baseline) -> int | None:
    """Window index of the first significant drop after the baseline windows, or None."""
    for point in points[BASELINE_WINDOWS:]:
        if np.isfinite(point.mean) and drop_z(point, base) > DROP_Z:
            return point.window
    return None


def first_action(windows: list[int], actions: list[str],
                 wanted: tuple[str, ...] = WARNING_ACTIONS) -> int | None:
    for window, action in zip(windows, actions):
        if action in wanted:
            return window
    return None


def alarms(windows: list[int], metrics: list[dict[str, float]]) -> list[int]:
    """Windows whose drift test rejects at ``ALARM_ALPHA``, whatever the policy decided."""
    return [window for window, values in zip(windows, metrics) if values.get(ALARM_METRIC, 1.0) < ALARM_ALPHA]


def lead_time(action_window: int | None, drop_window: int | None) -> int | None:
    """Windows between the first warning and the first drop; positive = the warning came first."""
    if action_window is None or drop_window is None:
        return None
    return drop_window - action_window


@dataclass(frozen=True)
class Correlation:
    metric: str
    n: int
    spearman: float
    p_value: float
    partial: float | None = None  # Spearman with the control variable's ranks partialled out


def correlations(metric_rows: list[dict[str, float]], quality_loss: list[float],
                 control: str | None = None) -> list[Correlation]:
    """Spearman correlation of every metric with quality loss, over the points that have both.

    With ``control`` (a key of the rows, e.g. the model's age), also the partial rank correlation
    given it: does the metric say more about the loss than the control already does?
    """
    loss = np.asarray(quality_loss, dtype=float)
    names = sorted({name for row in metric_rows for name in row if not name.endswith(".p_value")})
    controls = np.array([row.get(control, np.nan) for row in metric_rows], dtype=float) if control else None
    out = []
    for name in names:
        values = np.array([row.get(name, np.nan) for row in metric_rows], dtype=float)
        ok = np.isfinite(values) & np.isfinite(loss)
        if ok.sum() < 4 or np.ptp(values[ok]) == 0:
            continue
        rho, p = stats.spearmanr(values[ok], loss[ok])
        partial = None
        if controls is not None and name != control and np.ptp(controls[ok]) > 0:
            partial = partial_spearman(values[ok], loss[ok], controls[ok])
        out.append(Correlation(name, int(ok.sum()), float(rho), float(p), partial))
    return sorted(out, key=lambda c: -abs(c.spearman))


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Rank correlation of x and y after removing the linear effect of z's ranks from both."""
    rx, ry, rz = (stats.rankdata(v) for v in (x, y, z))
    design = np.column_stack([np.ones_like(rz), rz])

    def residual(r: np.ndarray) -> np.ndarray:
        return r - design @ np.linalg.lstsq(design, r, rcond=None)[0]

    ex, ey = residual(rx), residual(ry)
    denominator = float(np.sqrt((ex @ ex) * (ey @ ey)))
    return float(ex @ ey / denominator) if denominator > 0 else float("nan")
