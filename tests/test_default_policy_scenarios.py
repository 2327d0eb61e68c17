"""The shipped default policy on the scenario suite (real MovieLens factors, the version's sibling refits).

Every kind at every strength, one seed: each scenario is played as two consecutive checks that see
the same drift (the default policy sustains a retrain over two checks), with the evidence a real check
assembles. The cells the policy misses are listed with the reason (strict xfail: a cell that starts
passing fails here, so the list stays true). The 3-seed version with its confusion matrix is
benchmarks/scenario_confusion.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drift_decider.policy import load_policy
from drift_decider.demo.scenarios import SCENARIO_KINDS, STRENGTHS, check_values, first_action, generate_scenario

POLICY = load_policy(Path(__file__).resolve().parents[1] / "policies" / "recommender-default.yaml")
BELOW_REFIT_NOISE = ("a semantic change smaller than twice what an 80 % subsample refit does to rankings and "
                     "neighbourhoods of this model: no noise-relative rule can tell it from a refit")
KNOWN_MISSES = {
    ("rotation", 0.1): "the fitted fix restores 4.9 % of the top-k, under the 5 % materiality of fix_gain_min",
    ("queries_off_catalog", 0.1): "14 % of queries lack a match, under the 20 % of off_catalog_max",
    ("neighbourhood_change", 0.03): BELOW_REFIT_NOISE,
    ("neighbourhood_change", 0.1): BELOW_REFIT_NOISE,
    ("new_cluster", 0.03): BELOW_REFIT_NOISE,
    ("new_cluster", 0.08): BELOW_REFIT_NOISE,
    ("new_cluster", 0.2): BELOW_REFIT_NOISE,
}
SUITE = [pytest.param(kind, strength, marks=pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[(kind, strength)]))
         if (kind, strength) in KNOWN_MISSES else (kind, strength)
         for kind, strengths in STRENGTHS.items() for strength in strengths]


@pytest.mark.slow
@pytest.mark.parametrize("kind, strength", SUITE)
def test_default_policy_picks_the_right_action(kind, strength):
    action = first_action(POLICY, check_values(generate_scenario(kind, strength, seed=0), seed=0))
    if SCENARIO_KINDS[kind] == "none":
        assert action != "retrain"      # the acceptance's hard line: no retrain without a change
    assert action == SCENARIO_KINDS[kind]
