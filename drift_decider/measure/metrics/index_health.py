"""Health of the serving ANN index against the current catalogue: does it need a refresh?

An index serves the vectors it was built from. Items added since are missing (coverage), items
whose vectors were updated since are served at their old place (stale share), and both, plus
the approximation of the ANN structure itself, show in recall against exact search on the
current catalogue. Age is what a policy needs for "rebuild at least every N days".
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from drift_decider.inputs.serving_index import ServingIndex
from drift_decider.errors import InputError
from drift_decider.measure.metrics.knn import exact_knn, prepare
from drift_decider.measure.metrics.result import MetricResult
from drift_decider.measure.metrics.structure import shared_rows

DEFAULT_EPSILON = 0.1


def index_health_metrics(catalog_ids: np.ndarray, catalog_vectors: np.ndarray, index: ServingIndex, *,
                         queries: np.ndarray | None = None, k: int = 10, epsilon: float = DEFAULT_EPSILON,
                         now: datetime | None = None, n_queries: int = 1000,
                         seed: int = 0) -> list[MetricResult]:
    """Recall@k, coverage, stale share and age of ``index`` for the catalogue as it is now.

    ``queries`` default to a seeded sample of catalogue vectors. An item is stale when its vector
    moved more than ``epsilon`` relative to the vector indexed, after one global rescale (unit
    vectors for a cosine index, so only direction counts there; raw vectors for inner product,
    where an item's norm relative to the others matters too).
    """
    catalog_ids = np.asarray(catalog_ids)
    catalog = np.asarray(catalog_vectors, dtype=np.float32)
    if catalog.ndim != 2 or len(catalog) != len(catalog_ids) or len(catalog) == 0:
        raise InputError(f"the catalogue needs one vector per id: {catalog_ids.shape} ids, {catalog.shape} vectors")
    if catalog.shape[1] != index.vectors.shape[1]:
        raise InputError(f"catalogue vectors have {catalog.shape[1]} dimensions, the index "
                         f"{index.vectors.shape[1]}: they come from different models")
    if not epsilon > 0:
        raise InputError(f"epsilon must be positive, got {epsilon}")
    cat_rows, idx_rows = shared_rows(catalog_ids, index.ids)
    return [
        _recall(catalog_ids, catalog, index, queries, k, n_queries, seed),
        MetricResult("index.coverage", len(cat_rows) / len(catalog_ids),
                     detail={"n_catalog": int(len(catalog_ids)), "n_missing": int(len(catalog_ids) - len(cat_rows)),
                             "orphan_share": float(1 - len(idx_rows) / len(index.ids))}),
        _stale(catalog[cat_rows], index.vectors[idx_rows], index.metric, epsilon),
        _age(index.built_at, now),
    ]


def _recall(catalog_ids: np.ndarray, catalog: np.ndarray, index: ServingIndex, queries: np.ndarray | None,
            k: int, n_queries: int, seed: int) -> MetricResult:
    if queries is None:
        rng = np.random.default_rng(seed)
        queries = catalog[np.sort(rng.choice(len(catalog), size=min(n_queries, len(catalog)), replace=False))]
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != catalog.shape[1] or len(queries) == 0:
        raise InputError(f"queries must be (n, {catalog.shape[1]}) with n > 0, got {queries.shape}")
    if k > min(len(catalog), len(index.ids)):
        return MetricResult.insufficient("index.recall_at_k", f"k={k} exceeds the catalogue or index size")
    exact_rows, _ = exact_knn(catalog, queries, k, metric=index.metric)
    served, _ = index.search(queries, k)
    hits = (catalog_ids[exact_rows][:, :, None] == served[:, None, :]).any(axis=2).mean(axis=1)
    return MetricResult("index.recall_at_k", float(hits.mean()),
                        detail={"k": k, "n_queries": int(len(queries)), "kind": index.kind,
                                "metric": index.metric, "p10": float(np.percentile(hits, 10))})


def _stale(current: np.ndarray, built: np.ndarray, metric: str, epsilon: float) -> MetricResult:
    """Share of indexed items more than ``epsilon`` (relative) from where the index serves them, beyond
    one global rescale: scaling every vector alike changes no ranking, so it makes nothing stale."""
    if len(current) == 0:
        return MetricResult.insufficient("index.stale_share", "no catalogue item is in the index")
    now_vec = prepare(current, metric).astype(np.float64)
    then_vec = prepare(built, metric).astype(np.float64)
    then_norm = np.linalg.norm(then_vec, axis=1)
    ratios = np.linalg.norm(now_vec, axis=1)[then_norm > 0] / then_norm[then_norm > 0]
    scale = float(np.median(ratios)) if len(ratios) else 1.0   # the median item's: moved items cannot pull it
    served = scale * then_vec
    moved = np.linalg.norm(now_vec - served, axis=1) / np.maximum(np.linalg.norm(served, axis=1),
                                                                   np.finfo(np.float32).tiny)
    return MetricResult("index.stale_share", float(np.mean(moved > epsilon)),
                        detail={"epsilon": epsilon, "n_indexed_in_catalog": int(len(current)),
                                "global_scale": scale, "moved_p50": float(np.percentile(moved, 50)),
                                "moved_p99": float(np.percentile(moved, 99))})


def _age(built_at: datetime | None, now: datetime | None) -> MetricResult:
    if built_at is None:
        return MetricResult.insufficient("index.age_days", "the index has no build time")
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return MetricResult("index.age_days", (now - built_at).total_seconds() / 86400.0,
                        detail={"built_at": built_at.isoformat()})
