"""What users get: the top-k results of fixed reference queries, before and after a cheap fix.

A recommender's users feel rankings, not coordinates. The reference keeps a sample of queries
(user vectors of the version's own tower). Scoring those same queries against the reference items
and against the current items shows what changed for a user whose vector did not; fitting the
cheap fix (one rotation of directions plus one power law on norms, which covers a global scale)
and scoring again shows how much of that the fix restores:

- ``rank.overlap``: mean share of each query's reference top-k still in its top-k now, raw.
- ``rank.overlap_fixed``: the same after the cheap fix maps the current items back onto the
  reference space. Low here means no recalibration restores what users got: retrain territory.
- ``rank.fix_gain``: ``overlap_fixed - overlap``, how much of the ranking the fix gives back.
- ``rank.score_shift``: relative shift of the mean top-k score of the fixed queries. Rankings can
  stay while scores move (a global rescale): a calibration warning, not a ranking change.
- ``queries.off_catalog_share``: share of today's queries whose best cosine match in today's
  catalogue is below the 5th percentile of the reference queries' best matches: users moving to
  where the catalogue has nothing for them (about 0.05 when nothing moved).

Rows of the item arrays are paired (the same ids in the same order); see ``structure.shared_rows``.
"""

from __future__ import annotations

import numpy as np

from drift_decider.errors import InputError
from drift_decider.measure.metrics.knn import exact_knn
from drift_decider.measure.metrics.result import MetricResult
from drift_decider.measure.metrics.sampling import seeded_rows
from drift_decider.measure.metrics.scores import relative_change
from drift_decider.measure.metrics.structure import procrustes_fit

RANKING_METRICS = ("rank.overlap", "rank.overlap_fixed", "rank.fix_gain", "rank.score_shift")
COVERAGE_METRIC = "queries.off_catalog_share"
LOW_MATCH_PERCENTILE = 5.0
MIN_QUERIES = 20


def ranking_metrics(reference_items: np.ndarray, current_items: np.ndarray, reference_queries: np.ndarray, *,
                    k: int = 10, n_queries: int = 1000, seed: int = 0) -> list[MetricResult]:
    """Top-k overlap of fixed queries, raw and after the fitted cheap fix, and their score shift."""
    a = np.asarray(reference_items, dtype=np.float64)
    b = np.asarray(current_items, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(f"paired item arrays must have the same 2-D shape, got {a.shape} and {b.shape}")
    queries = _sample(reference_queries, n_queries, seed)
    if len(queries) < MIN_QUERIES or len(a) <= k:
        reason = f"{len(queries)} reference queries and {len(a)} shared items; need {MIN_QUERIES} and more than k={k}"
        return [MetricResult.insufficient(name, reason) for name in RANKING_METRICS]
    ref_top, ref_scores = exact_knn(a, queries, k)
    raw_top, raw_scores = exact_knn(b, queries, k)
    fixed_top, _ = exact_knn(cheap_fix(a, b), queries, k)
    overlap, overlap_fixed = _overlap(ref_top, raw_top), _overlap(ref_top, fixed_top)
    ref_mean = float(ref_scores.mean())
    shift = float(raw_scores.mean()) - ref_mean
    detail = {"k": k, "n_queries": int(len(queries)), "n_items": int(len(a)), "metric": "ip"}
    return [
        MetricResult("rank.overlap", float(overlap.mean()),
                     detail={**detail, "p10": float(np.percentile(overlap, 10))}),
        MetricResult("rank.overlap_fixed", float(overlap_fixed.mean()),
                     detail={**detail, "p10": float(np.percentile(overlap_fixed, 10)),
                             "fix": "rotation of directions + power law on norms"}),
        MetricResult("rank.fix_gain", float(overlap_fixed.mean() - overlap.mean()), detail=detail),
        MetricResult("rank.score_shift", abs(relative_change(shift, ref_mean)),
                     detail={**detail, "signed_shift": shift, "reference_mean": ref_mean}),
    ]


def cheap_fix(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """``current`` mapped back onto ``reference`` by the cheapest repairs a team can ship without
    retraining: one rotation of the directions and one power law ``|r| = c |x|^g`` on the norms."""
    rotation, _ = procrustes_fit(current, reference)
    turned = current @ rotation
    cur_norm, ref_norm = np.linalg.norm(current, axis=1), np.linalg.norm(reference, axis=1)
    usable = (cur_norm > 0) & (ref_norm > 0)
    if usable.sum() < 2 or np.ptp(np.log(cur_norm[usable])) == 0:
        scale = np.sum(ref_norm[usable]) / max(np.sum(cur_norm[usable]), np.finfo(float).tiny)
        return turned * scale
    slope, intercept = np.polyfit(np.log(cur_norm[usable]), np.log(ref_norm[usable]), 1)
    target = np.where(cur_norm > 0,
                      np.exp(intercept) * np.power(np.maximum(cur_norm, np.finfo(float).tiny), slope), 0.0)
    return turned * (target / np.where(cur_norm > 0, cur_norm, 1.0))[:, None]


def query_coverage(reference_items: np.ndarray, reference_queries: np.ndarray, current_items: np.ndarray,
                   current_queries: np.ndarray, *, n_queries: int = 1000, seed: int = 0) -> MetricResult:
    """Share of today's queries whose best cosine match is below the reference's low percentile."""
    ref_q, cur_q = _sample(reference_queries, n_queries, seed), _sample(current_queries, n_queries, seed)
    if min(len(ref_q), len(cur_q)) < MIN_QUERIES:
        return MetricResult.insufficient(COVERAGE_METRIC, f"{min(len(ref_q), len(cur_q))} queries; at least "
                                         f"{MIN_QUERIES} needed on each side")
    _, ref_best = exact_knn(reference_items, ref_q, 1, metric="cosine")
    _, cur_best = exact_knn(current_items, cur_q, 1, metric="cosine")
    low = float(np.percentile(ref_best, LOW_MATCH_PERCENTILE))
    return MetricResult(COVERAGE_METRIC, float(np.mean(cur_best[:, 0] < low)),
                        detail={"low_match_cosine": low, "percentile": LOW_MATCH_PERCENTILE,
                                "n_queries_reference": int(len(ref_q)), "n_queries_current": int(len(cur_q)),
                                "current_best_p50": float(np.median(cur_best))})


def _overlap(reference_top: np.ndarray, current_top: np.ndarray) -> np.ndarray:
    k = reference_top.shape[1]
    return (reference_top[:, :, None] == current_top[:, None, :]).sum(axis=(1, 2)) / k


def _sample(queries: np.ndarray, n: int, seed: int) -> np.ndarray:
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2:
        raise InputError(f"queries must be a 2-D array, got shape {queries.shape}")
    return queries[seeded_rows(len(queries), n, seed)]
