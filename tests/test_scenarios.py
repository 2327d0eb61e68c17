"""The scenario generator: seeded, and each kind changes what its documentation says it changes."""

from __future__ import annotations

import numpy as np
import pytest

from drift_decider.errors import InputError
from drift_decider.demo.scenarios import (SCENARIO_KINDS, STRENGTHS, UPDATE_NOISE, check_values, generate_scenario,
                                     scenario_grid)


def values(scenario) -> dict[str, float]:
    return check_values(scenario, index_kind="exact")


def _factor(strength: float, seed: int) -> float:
    return 1 + strength if seed % 2 == 0 else 1 / (1 + strength)


# What each kind must show, given its strength and seed: the generator's contract.
SIGNATURES = {
    "none": lambda v, s, seed: v["knn_turnover"] < 0.01 and v["index.stale_share"] == 0
    and v["procrustes.residual"] == pytest.approx(s, abs=0.01),
    "refit": lambda v, s, seed: v["knn_turnover"] > 0.05 and 0.5 < v["rank.overlap_fixed"] < 0.95
    and v["index.stale_share"] == 0,
    "population_change": lambda v, s, seed: v["knn_turnover"] < 0.01 and v["rank.overlap_fixed"] > 0.95
    and v["index.stale_share"] == 0,
    "fold_in": lambda v, s, seed: v["index.stale_share"] == 0 and v["procrustes.scale"] == pytest.approx(1, abs=0.01)
    and 0 < v["procrustes.residual"] < 0.1,
    "new_items": lambda v, s, seed: v["index.coverage"] == pytest.approx(1 / (1 + s), abs=0.002),
    "updated_vectors": lambda v, s, seed: v["index.stale_share"] == pytest.approx(s, abs=0.002)
    and v["knn_turnover"] < 0.01,
    "rotation": lambda v, s, seed: v["procrustes.residual"] < 2 * UPDATE_NOISE
    and v["movement.cosine_p50"] > 10 * UPDATE_NOISE ** 2 and v["rank.fix_gain"] > 0,
    "permuted_axes": lambda v, s, seed: v["rank.fix_gain"] > 0.1 and v["rank.overlap_fixed"] > 0.95
    and v["index.stale_share"] == 0,
    "scale": lambda v, s, seed: v["procrustes.scale"] == pytest.approx(_factor(s, seed), rel=0.01)
    and v["rank.overlap"] > 0.95 and v["rank.score_shift"] == pytest.approx(abs(_factor(s, seed) - 1), rel=0.1),
    "norm_change": lambda v, s, seed: v["movement.cosine_p90"] < UPDATE_NOISE ** 2
    and v["procrustes.residual"] > 2 * UPDATE_NOISE,
    "score_shift": lambda v, s, seed: v["scores.mean_shift"] == pytest.approx(abs(_factor(s, seed) - 1), rel=0.1)
    and v["procrustes.scale"] == pytest.approx(1, abs=0.01),
    "neighbourhood_change": lambda v, s, seed: v["procrustes.moved_share"] > s / 2 and v["knn_turnover"] > s / 2,
    "new_cluster": lambda v, s, seed: v["procrustes.moved_share"] == pytest.approx(s, abs=0.01),
    "queries_off_catalog": lambda v, s, seed: v["queries.off_catalog_share"] > 0.05 + s / 3
    and v["knn_turnover"] < 0.01,
}


@pytest.mark.parametrize("kind", list(SCENARIO_KINDS))
@pytest.mark.parametrize("pick", [0, -1])
def test_each_kind_changes_what_it_says(kind, pick):
    strength = STRENGTHS[kind][pick]
    seed = 2 + pick  # even for the mildest, odd for the strongest: both directions of scale-like changes
    scenario = generate_scenario(kind, strength, seed)
    assert scenario.expected_action == SCENARIO_KINDS[kind]
    assert SIGNATURES[kind](values(scenario), strength, seed)


def test_same_arguments_same_scenario_and_seeds_differ():
    first, again, other = (generate_scenario("new_cluster", 0.1, seed) for seed in (4, 4, 5))
    for name in ("reference_ids", "current_vectors", "index_vectors", "queries_current"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.reference_ids, other.reference_ids)


def test_population_change_moves_todays_users_along_one_taste_direction():
    scenario = generate_scenario("population_change", 1.0, 3)
    np.testing.assert_array_equal(scenario.current_ids, scenario.reference_ids)
    shift = scenario.queries_current.mean(axis=0) - scenario.queries_reference.mean(axis=0)
    spread = scenario.queries_reference.std(axis=0).mean()
    assert np.linalg.norm(shift) > spread     # the population's centre moved by more than a typical spread


def test_every_scenario_carries_the_versions_siblings():
    first, other = generate_scenario("none", 0.0, 0), generate_scenario("rotation", 0.3, 5)
    assert len(first.siblings) == 3 and first.siblings is other.siblings


def test_index_snapshot_is_the_registered_reference():
    scenario = generate_scenario("updated_vectors", 0.15, 0)
    np.testing.assert_array_equal(scenario.index_ids, scenario.reference_ids)
    np.testing.assert_array_equal(scenario.index_vectors, scenario.reference_vectors)
    assert scenario.checked_at > scenario.index_built_at


def test_fold_in_changes_only_items_with_new_ratings_much():
    """A real incremental update: most items barely move, a few (those with new ratings) move more."""
    scenario = generate_scenario("fold_in", 0.03, 0)
    moved = np.linalg.norm(scenario.current_vectors - scenario.reference_vectors, axis=1) / \
        np.linalg.norm(scenario.reference_vectors, axis=1)
    assert np.median(moved) < 0.01 < moved.max()
    np.testing.assert_array_equal(scenario.index_vectors, scenario.current_vectors)


def test_new_items_are_real_held_out_items():
    scenario = generate_scenario("new_items", 0.1, 1)
    added = np.setdiff1d(scenario.current_ids, scenario.reference_ids)
    assert len(added) == round(0.1 * len(scenario.reference_ids))
    assert not np.isin(added, scenario.index_ids).any()


def test_grid_covers_every_kind_and_strength():
    grid = scenario_grid(2)
    assert len(grid) == 2 * sum(len(s) for s in STRENGTHS.values())
    assert {kind for kind, _, _ in grid} == set(SCENARIO_KINDS)


@pytest.mark.parametrize("kind, strength", [("drift", 0.1), ("none", -0.1), ("new_items", 0.5),
                                             ("norm_change", 1.0), ("fold_in", 1.0)])
def test_bad_scenario_arguments_are_input_errors(kind, strength):
    with pytest.raises(InputError):
        generate_scenario(kind, strength, 0)
