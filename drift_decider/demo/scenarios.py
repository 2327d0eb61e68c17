"""Seeded drift scenarios with a known right action, built from real MovieLens factors.

Each scenario is a realistic check: the reference is a model version's item embeddings at
registration (a random 85 % of the MovieLens items, SVD factors), the serving index was built
from them, and the current catalogue is the same model's item embeddings now. Every scenario,
"none" included, carries the small noise of an incremental update (relative per-item noise),
so that no-change is never a bit-for-bit copy. User factors serve as queries: the reference
queries are the version's users, the current ones today's. The version's noise floor comes from
three sibling refits on 80 % of the users (fixed seeds: they belong to the version, not to the
scenario), which is what a team has at registration.

Kinds and their ground truth (strength meaning in brackets). A kind's label is what a correct
decision takes by the meaning of the four actions, decided on what users get: a change that
leaves every ranking in place (a global rescale of items or users) is a calibration warning, not
an action; a changed user population alone never is.

- ``none`` -> none (relative noise of the incremental update)
- ``refit`` -> none (share of users a refit of the same period saw, aligned onto the version by
  the best rotation and scale, as a team delivers a refit; no new data)
- ``population_change`` -> none (share of today's queries drawn from one end of a random taste
  direction: the users changed, the items did not)
- ``fold_in`` -> none (share of the newest MovieLens ratings folded into the item vectors with the
  user factors fixed: a real incremental update, no synthetic noise; the pipeline rebuilt the
  index after it, so the question is only whether the update looks like retrain or recalibrate)
- ``new_items`` -> refresh-index (share of catalogue items added after the index build;
  real held-out items)
- ``updated_vectors`` -> refresh-index (share of items re-estimated after the build; each moves
  15-30 % of its norm, staying in its neighbourhood)
- ``rotation`` -> recalibrate (generator scale of a random rotation; today's queries rotate along,
  users whose vectors were computed before do not)
- ``permuted_axes`` -> recalibrate (share of axes permuted and sign-flipped: the item tower was
  exported with its axes in another order; the user tower was not)
- ``scale`` -> none (relative change of the item scale, up or down by seed: rankings unchanged,
  a calibration warning; a policy parameter makes it recalibrate)
- ``norm_change`` -> recalibrate (1 - exponent of a per-item norm compression/expansion)
- ``score_shift`` -> none (relative change of the query scale: the user side drifts, rankings stay)
- ``neighbourhood_change`` -> retrain (share of items that trade places with one another)
- ``new_cluster`` -> retrain (share of items and users that gain a shared new taste direction)
- ``queries_off_catalog`` -> retrain (share of today's users who turned towards the direction the
  catalogue covers least: they want what no item offers)

Where this differs from real systems: the changes are applied to one SVD model's factors rather
than produced by a changing world, each kind comes alone, and the update noise is isotropic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.linalg import expm

from drift_decider.inputs.serving_index import ServingIndex
from drift_decider.demo.movielens import Factors, Ratings, factorize, load_ratings
from drift_decider.errors import InputError
from drift_decider.measure.report import EvidenceReport
from drift_decider.evidence.assemble import CurrentData, ReferenceData, build_evidence, measure_noise
from drift_decider.inputs.embeddings import EmbeddingSet
from drift_decider.measure.metrics.structure import procrustes_fit
from drift_decider.evidence.noise_floor import Sibling
from drift_decider.policy.records import CheckRecord
from drift_decider.policy.replay import decide_series

SCENARIO_KINDS: dict[str, str] = {
    "none": "none",
    "refit": "none",
    "population_change": "none",
    "fold_in": "none",
    "new_items": "refresh-index",
    "updated_vectors": "refresh-index",
    "rotation": "recalibrate",
    "permuted_axes": "recalibrate",
    "scale": "none",
    "norm_change": "recalibrate",
    "score_shift": "none",
    "neighbourhood_change": "retrain",
    "new_cluster": "retrain",
    "queries_off_catalog": "retrain",
}
STRENGTHS: dict[str, tuple[float, ...]] = {
    "none": (0.0, 0.02, 0.05),
    "refit": (0.7, 0.8, 0.9),
    "population_change": (0.3, 0.6, 1.0),
    "fold_in": (0.01, 0.02, 0.03),
    "new_items": (0.03, 0.08, 0.15),
    "updated_vectors": (0.05, 0.15, 0.6),
    "rotation": (0.1, 0.3, 1.0),
    "permuted_axes": (0.1, 0.3, 1.0),
    "scale": (0.1, 0.25, 0.5),
    "norm_change": (0.2, 0.4, 0.7),
    "score_shift": (0.1, 0.25, 0.5),
    "neighbourhood_change": (0.03, 0.1, 0.3),
    "new_cluster": (0.03, 0.08, 0.2),
    "queries_off_catalog": (0.1, 0.25, 0.5),
}
SIBLING_SEEDS = (101, 102, 103)   # the version's sibling refits (not the scenario's seed)
SIBLING_SHARE = 0.8
UPDATE_NOISE = 0.02          # relative noise of an incremental update in every non-"none" scenario
REFERENCE_SHARE = 0.85       # items in the registered catalogue; the rest are candidates for new items
N_QUERIES = 300
BUILT_AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Scenario:
    """Everything one check sees, plus the action a correct decision takes."""

    kind: str
    strength: float
    seed: int
    expected_action: str
    reference_ids: np.ndarray
    reference_vectors: np.ndarray
    current_ids: np.ndarray
    current_vectors: np.ndarray
    index_ids: np.ndarray
    index_vectors: np.ndarray
    index_built_at: datetime
    queries_reference: np.ndarray
    queries_current: np.ndarray
    checked_at: datetime
    siblings: tuple[Sibling, ...]


@lru_cache(maxsize=2)
def base_factors(dim: int = 32) -> Factors:
    """MovieLens SVD factors (items rated at least 5 times), computed once per process."""
    return factorize(load_ratings(), dim=dim, min_item_ratings=5, seed=0)


@lru_cache(maxsize=16)
def subsample_refit(share: float, seed: int, dim: int = 32) -> Factors:
    """The base model refitted on a seeded ``share`` of the users: the same period, no new data."""
    ratings = load_ratings()
    users = np.unique(ratings.user)
    keep = np.random.default_rng(seed).choice(users, size=int(share * len(users)), replace=False)
    return factorize(ratings.of_users(keep), dim=dim, min_item_ratings=5, seed=seed)


@lru_cache(maxsize=2)
def version_siblings(dim: int = 32) -> tuple[Sibling, ...]:
    """The sibling refits a team registers with the version (the same for every scenario)."""
    return tuple(Sibling(f.item_ids, f.item_vectors) for f in
                 (subsample_refit(SIBLING_SHARE, seed, dim) for seed in SIBLING_SEEDS))


@lru_cache(maxsize=8)
def fold_in_update(share: float, dim: int = 32) -> tuple[Factors, np.ndarray]:
    """Factors learned without the newest ``share`` of ratings, and the item vectors after an update.

    The update folds all ratings in: each item's vector is re-solved by least squares against the
    fixed user factors, which is what an incremental update of a factorisation does. The returned
    factors carry the same least-squares item vectors for the older ratings, so the two differ
    only by the new ratings.
    """
    ratings = load_ratings()
    cut = ratings.timestamp[int((1.0 - share) * (len(ratings.timestamp) - 1))]
    older = ratings.before(cut)
    factors = factorize(older, dim=dim, min_item_ratings=5, seed=0)
    before = _least_squares_items(older, factors)
    return (Factors(factors.item_ids, before, factors.user_ids, factors.user_vectors),
            _least_squares_items(ratings, factors))


def _least_squares_items(ratings: Ratings, factors: Factors) -> np.ndarray:
    """Item vectors minimising the error on the user-centred ratings, user factors fixed."""
    known = np.isin(ratings.item, factors.item_ids) & np.isin(ratings.user, factors.user_ids)
    rows = np.searchsorted(factors.user_ids, ratings.user[known])
    cols = np.searchsorted(factors.item_ids, ratings.item[known])
    values = ratings.rating[known].astype(np.float64)
    n_users = len(factors.user_ids)
    user_mean = np.bincount(rows, weights=values, minlength=n_users) / np.maximum(
        np.bincount(rows, minlength=n_users), 1)
    matrix = sparse.csr_matrix((values - user_mean[rows], (rows, cols)), shape=(n_users, len(factors.item_ids)))
    users = factors.user_vectors.astype(np.float64)
    return np.linalg.solve(users.T @ users, np.asarray(matrix.T @ users).T).T.astype(np.float32)


def generate_scenario(kind: str, strength: float, seed: int, *, dim: int = 32) -> Scenario:
    """A scenario of ``kind`` at ``strength``; the same arguments give the same arrays."""
    if kind not in SCENARIO_KINDS:
        raise InputError(f"unknown scenario kind {kind!r}; expected one of {', '.join(SCENARIO_KINDS)}")
    if strength < 0:
        raise InputError(f"strength must be non-negative, got {strength}")
    if kind in ("fold_in", "norm_change") and strength >= 1:
        raise InputError(f"{kind} strength is a share or an exponent change below 1, got {strength}")
    factors, updated = fold_in_update(strength, dim) if kind == "fold_in" else (base_factors(dim), None)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(factors.item_ids))
    n_ref = int(REFERENCE_SHARE * len(order))
    ref_rows, pool_rows = np.sort(order[:n_ref]), order[n_ref:]
    ref_ids, ref = factors.item_ids[ref_rows], factors.item_vectors[ref_rows].astype(np.float64)
    users = rng.choice(len(factors.user_ids), size=min(N_QUERIES, len(factors.user_ids)), replace=False)
    queries = factors.user_vectors[users].astype(np.float64)

    if updated is not None:
        cur, cur_queries = updated[ref_rows].astype(np.float64), queries.copy()
    else:
        noise = strength if kind == "none" else UPDATE_NOISE
        cur, cur_queries = _jitter(ref, noise, rng), _jitter(queries, noise, rng)
    cur_ids = ref_ids
    if kind == "refit":
        refit = subsample_refit(strength, seed + 1000, dim)
        cur_ids, ref_pos, refit_pos = np.intersect1d(ref_ids, refit.item_ids, assume_unique=True,
                                                     return_indices=True)
        rotation, scale = procrustes_fit(refit.item_vectors[refit_pos].astype(np.float64), ref[ref_pos])
        cur = (refit.item_vectors[refit_pos].astype(np.float64) @ rotation) * scale
    elif kind == "population_change":
        taste = factors.user_vectors @ _unit(rng.standard_normal(ref.shape[1]))
        pool = np.flatnonzero(taste >= np.quantile(taste, 0.75))
        rows = _subset(len(cur_queries), strength, rng)
        cur_queries[rows] = _jitter(factors.user_vectors[rng.choice(pool, size=len(rows))].astype(np.float64),
                                    UPDATE_NOISE, rng)
    elif kind == "new_items":
        added = pool_rows[: int(round(strength * n_ref))]
        if len(added) < round(strength * n_ref):
            raise InputError(f"new_items strength {strength} needs more held-out items than the "
                             f"{len(pool_rows)} available")
        cur_ids = np.concatenate([ref_ids, factors.item_ids[added]])
        cur = np.vstack([cur, factors.item_vectors[added]])
    elif kind == "updated_vectors":
        rows = _subset(len(cur), strength, rng)
        cur[rows] = _jitter(cur[rows], 1.0, rng, magnitude=rng.uniform(0.15, 0.3, size=(len(rows), 1)))
    elif kind == "rotation":
        rotation = _rotation(ref.shape[1], strength, rng)
        cur, cur_queries = cur @ rotation, cur_queries @ rotation
    elif kind == "permuted_axes":
        axes = rng.choice(ref.shape[1], size=max(2, int(round(strength * ref.shape[1]))), replace=False)
        cur[:, axes] = -cur[:, np.roll(axes, 1)]
    elif kind == "scale":
        cur = cur * _factor(strength, seed)
    elif kind == "norm_change":
        cur = _compress_norms(cur, 1.0 - strength if seed % 2 == 0 else 1.0 / (1.0 - strength))
    elif kind == "score_shift":
        cur_queries = cur_queries * _factor(strength, seed)
    elif kind == "neighbourhood_change":
        rows = _subset(len(cur), strength, rng)
        cur[rows] = cur[np.roll(rows, 1)]
    elif kind == "new_cluster":
        direction = _unit(rng.standard_normal(ref.shape[1]))
        for block in (cur, cur_queries):
            rows = _subset(len(block), strength, rng)
            block[rows] += np.linalg.norm(block[rows], axis=1, keepdims=True) * direction
    elif kind == "queries_off_catalog":
        empty = _emptiest_direction(ref, rng)
        rows = _subset(len(cur_queries), strength, rng)
        norms = np.linalg.norm(cur_queries[rows], axis=1, keepdims=True)
        cur_queries[rows] = norms * _unit(cur_queries[rows] / np.maximum(norms, 1e-12) + 3.0 * empty)
    # the index serves the registered vectors, unless the pipeline rebuilt it with the new ones
    rebuilt = kind in ("fold_in", "refit", "permuted_axes")
    index_ids, indexed = (cur_ids, cur) if rebuilt else (ref_ids, ref)
    return Scenario(kind, float(strength), seed, SCENARIO_KINDS[kind], ref_ids, ref.astype(np.float32),
                    cur_ids, cur.astype(np.float32), index_ids, indexed.astype(np.float32), BUILT_AT,
                    queries.astype(np.float32), cur_queries.astype(np.float32), BUILT_AT + timedelta(days=3),
                    version_siblings(dim))


def scenario_grid(seeds_per_strength: int, *, first_seed: int = 0) -> list[tuple[str, float, int]]:
    """(kind, strength, seed) for every kind and strength, ``seeds_per_strength`` seeds each."""
    return [(kind, strength, first_seed + i) for kind, strengths in STRENGTHS.items()
            for strength in strengths for i in range(seeds_per_strength)]


def _jitter(vectors: np.ndarray, relative: float, rng: np.random.Generator,
            magnitude: np.ndarray | float = 1.0) -> np.ndarray:
    """Each row plus isotropic noise of about ``relative * magnitude`` times its own norm."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    step = rng.standard_normal(vectors.shape) / np.sqrt(vectors.shape[1])
    return vectors + relative * magnitude * norms * step


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def _emptiest_direction(items: np.ndarray, rng: np.random.Generator, candidates: int = 256) -> np.ndarray:
    """Of ``candidates`` seeded random directions, the one whose best cosine match among the items is lowest."""
    directions = _unit(rng.standard_normal((candidates, items.shape[1])))
    best = (directions @ _unit(items).T).max(axis=1)
    return directions[int(np.argmin(best))]


def _subset(n: int, share: float, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n, size=max(2, int(round(share * n))), replace=False)


def _rotation(dim: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """exp of a random skew-symmetric generator: a rotation whose angles grow with ``scale``."""
    g = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    return expm(scale * (g - g.T) / np.sqrt(2.0))


def _factor(strength: float, seed: int) -> float:
    """Scale up by ``1 + strength`` for even seeds, down by the same ratio for odd ones."""
    return 1.0 + strength if seed % 2 == 0 else 1.0 / (1.0 + strength)


def _compress_norms(vectors: np.ndarray, exponent: float) -> np.ndarray:
    """Raise each row's norm, in units of the median norm, to ``exponent``; directions stay."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    relative = norms / np.median(norms)
    return vectors * np.where(relative > 0, relative ** (exponent - 1.0), 1.0)


def scenario_evidence(scenario: Scenario, *, index_kind: str = "hnsw", seed: int = 0) -> EvidenceReport:
    """The evidence a real check of this scenario assembles (``evidence.assemble.build_evidence``): the
    version's reference with its sibling noise floor, today's catalogue, queries and serving index (a
    real ANN index unless ``index_kind="exact"``)."""
    index = ServingIndex.build(scenario.index_ids, scenario.index_vectors, kind=index_kind, metric="ip",
                               seed=seed, built_at=scenario.index_built_at)
    reference = ReferenceData.from_arrays(scenario.reference_vectors, scenario.reference_ids,
                                          scenario.queries_reference, seed=seed)
    reference = replace(reference, noise=measure_noise(reference, list(scenario.siblings), seed=seed))
    items = EmbeddingSet(Path(f"scenario-{scenario.kind}"), scenario.current_vectors, scenario.current_ids)
    current = CurrentData(items, queries=EmbeddingSet(Path("queries"), scenario.queries_current), index=index)
    return build_evidence(reference, current, seed=seed, now=scenario.checked_at)


def check_values(scenario: Scenario, *, index_kind: str = "hnsw", seed: int = 0) -> dict[str, float]:
    """Every metric value a real check of this scenario sees."""
    return scenario_evidence(scenario, index_kind=index_kind, seed=seed).values()


def first_action(policy, values: dict[str, float], *, checks: int = 2,
                 start: datetime = BUILT_AT + timedelta(days=3)) -> str:
    """Play ``checks`` consecutive daily checks that all see ``values``; the first action taken.

    Each decision joins the history of the next as the tracking layer records it, so rules that
    must be sustained (``for: 2``) can fire; after the first action the drift would be repaired.
    """
    days = ((CheckRecord(f"day-{day}", start + timedelta(days=day), values), {}) for day in range(checks))
    actions = (step.decision.action for step in decide_series(policy, days))
    return next((action for action in actions if action != "none"), "none")
