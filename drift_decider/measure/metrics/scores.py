"""Calibration of similarity scores: do the top-k scores users see still mean what they meant?

Thresholds, blending weights and "relevance" cut-offs downstream are set on the score scale.
If the top-k score distribution moves while neighbourhoods stay, the fix is a recalibration.

``scores.ks`` compares the distributions of all top-k scores. Its p-value counts each query
once, not k times: the k scores of one query are dependent, so counting them all would
overstate the evidence. ``scores.mean_shift`` is ``|mean_cur - mean_ref| / |mean_ref|``: the
relative change of the typical top-k score ("scores are 10 % higher"), which reads the same for
every model. (A shift in standard-deviation units would not: across users top-k scores vary with
the user vector's norm, so the spread is wide and a uniform 10 % rescaling looks tiny.)
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from drift_decider.errors import InputError
from drift_decider.measure.metrics.knn import Metric, exact_knn
from drift_decider.measure.metrics.result import MetricResult

MIN_QUERIES = 20
QUANTILES = (10, 50, 90)


def score_metrics(reference_items: np.ndarray, current_items: np.ndarray, queries_reference: np.ndarray,
                  queries_current: np.ndarray, *, k: int = 10, seed: int = 0, n_queries: int = 1000,
                  metric: Metric = "ip") -> list[MetricResult]:
    """KS statistic and mean/quantile shift of top-k scores, reference vs current.

    When both query sets have the same length they are taken as the same users (paired) and
    sampled at the same rows.
    """
    rng = np.random.default_rng(seed)
    ref_q, cur_q = _sample(queries_reference, queries_current, n_queries, rng)
    if min(len(ref_q), len(cur_q)) < MIN_QUERIES:
        reason = f"{min(len(ref_q), len(cur_q))} queries; at least {MIN_QUERIES} needed"
        return [MetricResult.insufficient(name, reason) for name in ("scores.ks", "scores.mean_shift")]
    ref = _top_scores("reference", reference_items, ref_q, k, metric)
    cur = _top_scores("current", current_items, cur_q, k, metric)
    statistic = float(stats.ks_2samp(ref.ravel(), cur.ravel(), method="asymp").statistic)
    n, m = len(ref_q), len(cur_q)
    p_value = float(stats.kstwobign.sf(statistic * np.sqrt(n * m / (n + m))))
    ref_mean = float(ref.mean())
    shift = float(cur.mean()) - ref_mean
    quantile_shift = {f"p{q}": relative_change(float(np.percentile(cur, q) - np.percentile(ref, q)),
                                         float(np.percentile(ref, q))) for q in QUANTILES}
    common = {"k": k, "n_queries_reference": n, "n_queries_current": m, "metric": metric}
    return [
        MetricResult("scores.ks", statistic, p_value=p_value, detail=common),
        MetricResult("scores.mean_shift", abs(relative_change(shift, ref_mean)),
                     detail={**common, "signed_shift": shift, "reference_mean": ref_mean,
                             "reference_std": float(ref.std()), "relative_quantile_shift": quantile_shift}),
    ]


def relative_change(shift: float, base: float) -> float:
    """``shift / |base|``; infinite when a non-zero shift starts from a zero base."""
    if base != 0:
        return shift / abs(base)
    return 0.0 if shift == 0 else float(np.copysign(np.inf, shift))


def _sample(reference: np.ndarray, current: np.ndarray, n_queries: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    reference, current = np.asarray(reference, dtype=np.float32), np.asarray(current, dtype=np.float32)
    for name, q in (("reference", reference), ("current", current)):
        if q.ndim != 2:
            raise InputError(f"{name} queries must be a 2-D array, got shape {q.shape}")
    if len(reference) == len(current):
        rows = np.sort(rng.choice(len(reference), size=min(n_queries, len(reference)), replace=False))
        return reference[rows], current[rows]
    pick = [np.sort(rng.choice(len(q), size=min(n_queries, len(q)), replace=False)) for q in (reference, current)]
    return reference[pick[0]], current[pick[1]]


def _top_scores(name: str, items: np.ndarray, queries: np.ndarray, k: int, metric: Metric) -> np.ndarray:
    items = np.asarray(items)
    if items.ndim != 2 or items.shape[1] != queries.shape[1]:
        raise InputError(f"{name} items {items.shape} and queries {queries.shape} differ in width")
    _, scores = exact_knn(items, queries, k, metric=metric)
    return scores.astype(np.float64)
