"""Top-k score calibration metrics on MovieLens item and user factors."""

from __future__ import annotations

import numpy as np
import pytest

from drift_decider.errors import InputError
from drift_decider.measure.metrics.scores import score_metrics
from drift_decider.demo.scenarios import base_factors


@pytest.fixture(scope="module")
def factors():
    return base_factors()


def by_name(results):
    return {r.name: r for r in results}


def test_unchanged_scores_show_no_shift(factors):
    items, users = factors.item_vectors, factors.user_vectors
    got = by_name(score_metrics(items, items, users, users, n_queries=300))
    assert got["scores.ks"].value == 0.0 and got["scores.ks"].p_value == pytest.approx(1.0)
    assert got["scores.mean_shift"].value == 0.0


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_rescaled_items_shift_every_score_by_the_factor(factors, factor):
    items, users = factors.item_vectors, factors.user_vectors
    got = by_name(score_metrics(items, factor * items, users, users, n_queries=300))
    assert got["scores.mean_shift"].value == pytest.approx(abs(factor - 1), rel=1e-4)
    assert all(v == pytest.approx(factor - 1, rel=1e-3)
               for v in got["scores.mean_shift"].detail["relative_quantile_shift"].values())
    assert got["scores.ks"].value > 0.05


def test_ks_p_value_is_not_anticonservative_under_no_change(factors):
    """Two disjoint random user samples against the same items: rejections at 5 % stay near 5 %."""
    items, users = factors.item_vectors, factors.user_vectors
    trials = 200
    rejections = 0
    for seed in range(trials):
        order = np.random.default_rng(seed).permutation(len(users))
        half = len(users) // 2
        # one user fewer on the current side, so the two samples are not taken as paired
        current = users[order[half:2 * half - 1]]
        result = by_name(score_metrics(items, items, users[order[:half]], current, seed=seed))["scores.ks"]
        rejections += result.p_value < 0.05
    assert rejections / trials <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / trials)


def test_ks_detects_a_moderate_shift(factors):
    items, users = factors.item_vectors, factors.user_vectors
    got = by_name(score_metrics(items, items, users, 1.5 * users, n_queries=600))
    assert got["scores.ks"].p_value < 0.01


def test_few_queries_are_insufficient_data(factors):
    items, users = factors.item_vectors, factors.user_vectors
    results = score_metrics(items, items, users[:10], users[:10])
    assert all(r.status == "insufficient_data" for r in results)


def test_width_mismatch_is_an_input_error(factors):
    items, users = factors.item_vectors, factors.user_vectors
    with pytest.raises(InputError, match="differ in width"):
        score_metrics(items[:, :16], items, users, users)
