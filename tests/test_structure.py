"""Exact k-NN and the structure metrics (retrain vs recalibrate) on real MovieLens factors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from drift_decider.errors import InputError
from drift_decider.measure.metrics.knn import exact_knn, jaccard_rows, top_k, unit_rows
from drift_decider.measure.metrics.structure import STRUCTURE_METRICS, structure_metrics
from drift_decider.demo.scenarios import base_factors


@pytest.fixture(scope="module")
def items() -> tuple[np.ndarray, np.ndarray]:
    factors = base_factors()
    return factors.item_ids, factors.item_vectors


def values(results) -> dict[str, float]:
    out: dict[str, float] = {}
    for result in results:
        out.update(result.flat())
    return out


@pytest.mark.parametrize("metric", ["ip", "cosine"])
@pytest.mark.parametrize("block_rows", [1, 7, None])
def test_exact_knn_matches_a_full_sort(metric, block_rows):
    rng = np.random.default_rng(3)
    base, queries = rng.standard_normal((200, 8)), rng.standard_normal((30, 8))
    rows, scores = exact_knn(base, queries, 5, metric=metric, block_rows=block_rows)
    b, q = (unit_rows(base), unit_rows(queries)) if metric == "cosine" else (base, queries)
    full = (q @ b.T).astype(np.float32)
    expected = np.argsort(-full, axis=1)[:, :5]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-5)


def test_exact_knn_excludes_the_query_row():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((50, 4))
    rows, _ = exact_knn(base, base[:10], 3, metric="cosine", exclude=np.arange(10))
    assert not (rows == np.arange(10)[:, None]).any()
    with_self, _ = exact_knn(base, base[:10], 1, metric="cosine")
    np.testing.assert_array_equal(with_self[:, 0], np.arange(10))


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 51}, {"metric": "l2"}, {"exclude": np.array([0])}])
def test_exact_knn_rejects_bad_arguments(kwargs):
    base = np.ones((50, 4))
    with pytest.raises(InputError):
        exact_knn(base, base[:2], **{"k": 3, **kwargs})


def test_jaccard_rows_counts_the_overlap():
    a = np.array([[1, 2, 3, 4], [1, 2, 3, 4]])
    b = np.array([[4, 3, 2, 1], [1, 2, 8, 9]])
    np.testing.assert_allclose(jaccard_rows(a, b), [1.0, 2 / 6])


def test_unchanged_items_in_another_order_show_no_change(items):
    ids, vectors = items
    order = np.random.default_rng(0).permutation(len(ids))
    got = values(structure_metrics(vectors, ids, vectors[order], ids[order], n_queries=500))
    assert got["knn_jaccard"] == pytest.approx(1.0)
    assert got["knn_turnover"] == pytest.approx(0.0)
    assert got["procrustes.residual"] < 1e-5
    assert got["procrustes.scale"] == pytest.approx(1.0, abs=1e-5)
    assert got["procrustes.moved_share"] == 0.0
    assert got["movement.cosine_p90"] < 1e-6


def test_rotation_and_scale_are_absorbed_by_alignment(items):
    ids, vectors = items
    rotation = special_ortho_group.rvs(vectors.shape[1], random_state=1)
    got = values(structure_metrics(vectors, ids, 1.7 * vectors @ rotation, ids, n_queries=500))
    assert got["procrustes.residual"] < 1e-4
    assert got["procrustes.scale"] == pytest.approx(1.7, rel=1e-4)
    assert got["knn_jaccard"] > 0.99 and got["knn_turnover"] < 0.01 and got["procrustes.moved_share"] == 0.0
    assert got["movement.cosine_p50"] > 0.5  # items moved a lot, yet nothing a rotation cannot undo


@pytest.mark.parametrize("share", [0.05, 0.2])
def test_items_that_trade_places_are_what_alignment_cannot_fix(items, share):
    ids, vectors = items
    rng = np.random.default_rng(2)
    rows = rng.choice(len(ids), size=int(share * len(ids)), replace=False)
    current = vectors.copy()
    current[rows] = vectors[np.roll(rows, 1)]
    got = values(structure_metrics(vectors, ids, current, ids, n_queries=1000))
    moved_directions = np.mean(1 - np.sum(unit_rows(vectors[rows]) * unit_rows(current[rows]), axis=1) > 0.1)
    assert got["procrustes.moved_share"] == pytest.approx(share * moved_directions, abs=0.01)
    assert got["knn_turnover"] > share / 2
    assert got["procrustes.residual"] > 0.1


def test_update_noise_lowers_jaccard_but_not_turnover(items):
    """Jaccard is strict: noise reorders neighbours near the k-th. Turnover asks for new neighbours."""
    ids, vectors = items
    turnover, jaccard = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        noisy = vectors + 0.05 * np.linalg.norm(vectors, axis=1, keepdims=True) * \
            rng.standard_normal(vectors.shape) / np.sqrt(vectors.shape[1])
        got = values(structure_metrics(vectors, ids, noisy, ids, n_queries=500, seed=seed))
        turnover.append(got["knn_turnover"])
        jaccard.append(got["knn_jaccard"])
    assert max(jaccard) < 0.95
    assert max(turnover) < 0.01


def test_only_shared_ids_count(items):
    ids, vectors = items
    got = values(structure_metrics(vectors[:2000], ids[:2000], vectors[1000:], ids[1000:], n_queries=300))
    assert got["knn_jaccard"] == pytest.approx(1.0)
    detail = structure_metrics(vectors[:2000], ids[:2000], vectors[1000:], ids[1000:], n_queries=300)[0].detail
    assert detail["n_shared"] == 1000


def test_too_few_shared_ids_is_insufficient_data(items):
    ids, vectors = items
    results = structure_metrics(vectors[:60], ids[:60], vectors[:60], ids[:60])
    assert [r.name for r in results] == list(STRUCTURE_METRICS)
    assert all(r.status == "insufficient_data" and r.value is None for r in results)


def test_different_dimensions_keep_neighbourhoods_and_skip_alignment(items):
    ids, vectors = items
    results = {r.name: r for r in structure_metrics(vectors, ids, vectors[:, :20], ids, n_queries=300)}
    assert results["knn_jaccard"].status == "ok"
    assert results["procrustes.residual"].status == "insufficient_data"
    assert "dimensions differ" in results["movement.cosine_p50"].detail["reason"]


def test_non_finite_vectors_are_an_input_error(items):
    ids, vectors = items
    broken = vectors.copy()
    broken[5, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        structure_metrics(vectors, ids, broken, ids)


def test_duplicate_ids_are_an_input_error(items):
    ids, vectors = items
    with pytest.raises(InputError, match="duplicates"):
        structure_metrics(vectors, np.r_[ids[:-1], ids[0]], vectors, ids)


def test_same_seed_same_numbers(items):
    ids, vectors = items
    noisy = vectors + np.random.default_rng(9).normal(0, 0.05, vectors.shape).astype(np.float32)
    first = structure_metrics(vectors, ids, noisy, ids, n_queries=300, seed=5)
    second = structure_metrics(vectors, ids, noisy, ids, n_queries=300, seed=5)
    assert [r.to_dict() for r in first] == [r.to_dict() for r in second]


@pytest.mark.parametrize("k", [1, 3, 10])
def test_top_k_of_wide_blocks_matches_argsort(k):
    """Wide blocks take the lower-bound path; ties are broken by column, as a stable sort does."""
    rng = np.random.default_rng(k)
    block = rng.integers(-50, 50, size=(13, 9000)).astype(np.float32)   # many ties
    block[:, 100] = np.inf
    cols, vals = top_k(block, k)
    expected = np.argsort(-block, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(cols, expected)
    np.testing.assert_array_equal(vals, np.take_along_axis(block, expected, axis=1))
