"""Structure between two embedding sets of the same items: retrain or recalibrate?

A global rotation, scale or norm change leaves every item's neighbourhood in place: a fitted
map (recalibration) undoes it. Items that change neighbourhoods cannot be mapped back: the
model no longer describes the data and must be retrained. These metrics measure both sides on
the items present in both sets:

- ``knn_jaccard``: mean Jaccard@k of each sampled item's cosine k-NN, reference vs current.
  Strict: small noise reorders neighbours near the k-th and lowers it.
- ``knn_turnover``: share of current k-NN that were not even among the ``wide * k`` nearest in
  the reference: neighbours that came from elsewhere. Noise reorders within the wide set and
  leaves this at 0; a semantic change does not.
- ``procrustes.residual`` / ``procrustes.scale``: orthogonal Procrustes with scale,
  ``||s A R - B|| / ||B||`` and ``s``. A pure rotation and scale give residual 0.
- ``procrustes.moved_share``: share of items whose direction, after the best rotation of unit
  vectors, still moved by more than ``moved_epsilon`` cosine distance: what alignment cannot fix.
- ``movement.cosine_p50`` / ``_p90``: quantiles of each item's raw cosine movement (no alignment).
"""

from __future__ import annotations

import numpy as np

from drift_decider.errors import InputError
from drift_decider.measure.metrics.knn import exact_knn, jaccard_rows, unit_rows
from drift_decider.measure.metrics.result import MetricResult

STRUCTURE_METRICS = ("knn_jaccard", "knn_turnover", "procrustes.residual", "procrustes.scale",
                     "procrustes.moved_share", "movement.cosine_p50", "movement.cosine_p90")


def check_id_kinds(reference_ids: np.ndarray, current_ids: np.ndarray, where: str | None = None) -> None:
    """Numbers and text never match: ids of different kinds mean the files use different id columns, and
    pairing them would read as every item new or none shared, silently. ``where`` names the current ids'
    file."""
    kinds = {name: _id_kind(np.asarray(ids)) for name, ids in (("reference", reference_ids), ("current", current_ids))}
    if len(set(kinds.values())) > 1:
        raise InputError(f"{where + ': ' if where else ''}the reference ids are {kinds['reference']} and these ids "
                         f"{kinds['current']}: they must be the same kind of id to be paired")


def _id_kind(ids: np.ndarray) -> str:
    if ids.dtype.kind in "biu":
        return "integers"
    if ids.dtype.kind == "O" and len(ids) and not isinstance(ids[0], str):
        return "integers" if isinstance(ids[0], (int, np.integer)) else type(ids[0]).__name__
    return "text" if ids.dtype.kind in "USO" else ids.dtype.name


def shared_rows(reference_ids: np.ndarray, current_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the ids present in both sets, in the same order (sorted by id)."""
    check_id_kinds(reference_ids, current_ids)
    for name, ids in (("reference", reference_ids), ("current", current_ids)):
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise InputError(f"{name} ids must be one-dimensional, got shape {ids.shape}")
        if len(np.unique(ids)) != len(ids):
            raise InputError(f"{name} ids contain duplicates: each item must appear once")
    _, ref_rows, cur_rows = np.intersect1d(np.asarray(reference_ids), np.asarray(current_ids),
                                           assume_unique=True, return_indices=True)
    return ref_rows, cur_rows


def new_item_share(n_catalog: int, n_new: int, n_known: int) -> MetricResult:
    """Share of today's catalogue whose ids the version never learned (of ``n_known``): for a model that
    learns one embedding per item id, these are served with cold-start vectors at best. Counts, since
    on Spark the catalogue's ids are counted on the executors (evidence.assemble.CatalogTally)."""
    if n_catalog == 0:
        return MetricResult.insufficient("catalog.new_item_share", "the catalogue is empty")
    return MetricResult("catalog.new_item_share", n_new / n_catalog,
                        detail={"n_catalog": int(n_catalog), "n_new": int(n_new), "n_known": int(n_known)})


def _check_rows(name: str, vectors: np.ndarray, ids: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise InputError(f"{name} vectors must be 2-D with one row per id: {vectors.shape} for {len(ids)} ids")
    if not np.isfinite(vectors).all():
        raise InputError(f"{name} vectors contain NaN or infinite values")
    return vectors


def structure_metrics(reference_vectors: np.ndarray, reference_ids: np.ndarray,
                      current_vectors: np.ndarray, current_ids: np.ndarray, *, k: int = 10,
                      n_queries: int = 5000, seed: int = 0, wide: int = 5,
                      moved_epsilon: float = 0.1) -> list[MetricResult]:
    """Neighbourhood overlap, Procrustes alignment and movement of the items both sets share."""
    reference = _check_rows("reference", reference_vectors, reference_ids)
    current = _check_rows("current", current_vectors, current_ids)
    ref_rows, cur_rows = shared_rows(reference_ids, current_ids)
    needed = max(wide * k + 1, 2 * reference.shape[1])
    if len(ref_rows) < needed:
        reason = f"{len(ref_rows)} shared ids; at least {needed} needed (k={k}, wide={wide}, dim)"
        return [MetricResult.insufficient(name, reason, n_shared=len(ref_rows)) for name in STRUCTURE_METRICS]
    a = np.asarray(reference[ref_rows], dtype=np.float64)
    b = np.asarray(current[cur_rows], dtype=np.float64)
    common = {"n_shared": int(len(ref_rows))}
    results = _neighbourhoods(a, b, k=k, n_queries=n_queries, seed=seed, wide=wide, common=common)
    if a.shape[1] != b.shape[1]:
        reason = f"dimensions differ ({a.shape[1]} vs {b.shape[1]}): no rotation maps one onto the other"
        return results + [MetricResult.insufficient(name, reason) for name in STRUCTURE_METRICS[2:]]
    ua, ub = unit_rows(a), unit_rows(b)
    movement = 1.0 - np.sum(ua * ub, axis=1)
    return results + _procrustes(a, b, ua, ub, moved_epsilon, common) + [
        MetricResult(f"movement.cosine_p{q}", float(np.percentile(movement, q)), detail=dict(common))
        for q in (50, 90)]


def _neighbourhoods(a: np.ndarray, b: np.ndarray, *, k: int, n_queries: int, seed: int, wide: int,
                    common: dict) -> list[MetricResult]:
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(len(a), size=min(n_queries, len(a)), replace=False))
    ref_nn, _ = exact_knn(a, a[queries], wide * k, metric="cosine", exclude=queries)
    cur_nn, _ = exact_knn(b, b[queries], k, metric="cosine", exclude=queries)
    jaccard = jaccard_rows(ref_nn[:, :k], cur_nn)
    kept = (cur_nn[:, :, None] == ref_nn[:, None, :]).sum(axis=(1, 2)) / k
    detail = {**common, "k": k, "n_queries": int(len(queries)), "similarity": "cosine"}
    return [
        MetricResult("knn_jaccard", float(jaccard.mean()),
                     detail={**detail, "p10": float(np.percentile(jaccard, 10)),
                             "p50": float(np.percentile(jaccard, 50))}),
        MetricResult("knn_turnover", float(1.0 - kept.mean()),
                     detail={**detail, "wide": wide,
                             "share_of_items_losing_half": float(np.mean(kept < 0.5))}),
    ]


def procrustes_fit(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """Orthogonal ``R`` and scale ``s`` minimising ``||s a R - b||`` (a, b float64, rows paired)."""
    u, sigma, vt = np.linalg.svd(a.T @ b)
    return u @ vt, float(sigma.sum() / np.sum(a * a))


def _procrustes(a: np.ndarray, b: np.ndarray, ua: np.ndarray, ub: np.ndarray, moved_epsilon: float,
                common: dict) -> list[MetricResult]:
    """Best ``s, R`` for ``a`` onto ``b``, and what it leaves unexplained (``ua``/``ub``: their unit rows)."""
    rotation, scale = procrustes_fit(a, b)
    residual = float(np.linalg.norm(scale * a @ rotation - b) / np.linalg.norm(b))
    ua, ub = ua.astype(np.float64), ub.astype(np.float64)
    du, _, dvt = np.linalg.svd(ua.T @ ub)
    aligned = ua @ (du @ dvt)  # a rotation keeps unit rows unit
    moved = 1.0 - np.sum(aligned * ub, axis=1)
    direction_residual = float(np.linalg.norm(aligned - ub) / np.linalg.norm(ub))
    detail = {**common, "direction_residual": direction_residual,
              "rotation_trace_per_dim": float(np.trace(rotation) / a.shape[1])}
    return [
        MetricResult("procrustes.residual", residual, detail=detail),
        MetricResult("procrustes.scale", scale, detail=dict(common)),
        MetricResult("procrustes.moved_share", float(np.mean(moved > moved_epsilon)),
                     detail={**common, "epsilon": moved_epsilon,
                             "aligned_cosine_p50": float(np.percentile(moved, 50)),
                             "aligned_cosine_p99": float(np.percentile(moved, 99))}),
    ]
