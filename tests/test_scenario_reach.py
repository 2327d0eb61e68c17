"""Which retrain labels of the scenario benchmark no policy deciding on what users get can reach
(benchmarks/scenario_confusion.py, unreachable_retrains): a retrain case is out of reach when a
no-change case changed every retrain signal at least as much, on made-up values and on real scenarios.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import scenario_confusion  # noqa: E402
from drift_decider.demo.scenarios import check_values, generate_scenario  # noqa: E402

REFIT = {"rank.overlap_fixed": 0.70, "rank.overlap_fixed.noise_units": 1.2, "knn_turnover": 0.30,
         "knn_turnover.noise_units": 1.5, "queries.off_catalog_share": 0.10,
         "queries.off_catalog_share.noise_units": 2.0, "catalog.new_item_share": 0.0}


def test_a_retrain_case_that_changed_less_than_a_refit_is_out_of_reach():
    smaller = {**REFIT, "rank.overlap_fixed": 0.85, "knn_turnover": 0.05, "knn_turnover.noise_units": 0.3}
    measured = [("refit", 0.7, REFIT), ("neighbourhood_change", 0.1, smaller)]
    assert scenario_confusion.unreachable_retrains(measured) == [(1, "refit@0.7")]


@pytest.mark.parametrize("name, value", [
    ("rank.overlap_fixed", 0.60),                  # kept less of the top-k than the refit did
    ("queries.off_catalog_share", 0.30),           # more users without a match
    ("queries.off_catalog_share.noise_units", 2.5),
    ("catalog.new_item_share", 0.25),
])
def test_one_signal_beyond_every_no_change_case_puts_it_in_reach(name, value):
    measured = [("refit", 0.7, REFIT), ("none", 0.0, {**REFIT, "rank.overlap_fixed": 1.0}),
                ("new_cluster", 0.2, {**REFIT, name: value})]
    assert scenario_confusion.unreachable_retrains(measured) == []


def test_an_unmeasured_signal_is_skipped_and_a_labelled_action_other_than_retrain_is_never_judged():
    without_queries = {k: v for k, v in REFIT.items() if not k.startswith("queries.")}
    lower = {**REFIT, "rank.overlap_fixed": 0.9}
    measured = [("refit", 0.7, without_queries), ("new_cluster", 0.03, lower), ("rotation", 0.1, lower)]
    assert scenario_confusion.unreachable_retrains(measured) == [(1, "refit@0.7")]


@pytest.mark.slow
def test_on_real_scenarios_a_weak_neighbourhood_change_moves_less_than_a_refit_and_a_strong_one_more():
    measured = [(kind, strength, check_values(generate_scenario(kind, strength, seed=0), seed=0))
                for kind, strength in (("refit", 0.7), ("neighbourhood_change", 0.03), ("neighbourhood_change", 0.3))]
    assert scenario_confusion.unreachable_retrains(measured) == [(1, "refit@0.7")]


def test_fewer_unmatched_queries_than_the_reference_had_is_not_change_towards_a_retrain():
    """Review s7: |share - 0.05| counted a no-change case at 0.02 as much change as a retrain case at 0.08."""
    fewer = {**REFIT, "queries.off_catalog_share": 0.02}
    more = {**REFIT, "rank.overlap_fixed": 0.9, "queries.off_catalog_share": 0.08}
    assert scenario_confusion.unreachable_retrains([("refit", 0.7, fewer), ("new_cluster", 0.2, more)]) == []


def test_a_case_with_no_signal_in_common_is_never_called_out_of_reach():
    measured = [("refit", 0.7, {"knn_turnover": 0.3}), ("new_cluster", 0.2, {"rank.overlap_fixed": 0.9})]
    assert scenario_confusion.unreachable_retrains(measured) == []
