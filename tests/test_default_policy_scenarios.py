"""The shipped default policy picks the right repair on the scenario suite (real MovieLens factors).

Every kind at every strength, one seed: each scenario is played as two consecutive checks that see
the same drift (the default policy sustains a retrain over two checks), with every metric a real
check computes. The 240-scenario version with its confusion matrix is
benchmarks/scenario_confusion.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drift_decider.policy import load_policy
from drift_decider.scenarios import SCENARIO_KINDS, STRENGTHS, check_values, first_action, generate_scenario

POLICY = load_policy(Path(__file__).resolve().parents[1] / "policies" / "recommender-default.yaml")
SUITE = [(kind, strength) for kind, strengths in STRENGTHS.items() for strength in strengths]


@pytest.mark.parametrize("kind, strength", SUITE)
def test_default_policy_picks_the_right_action(kind, strength):
    values = check_values(generate_scenario(kind, strength, seed=0), seed=0)
    assert first_action(POLICY, values) == SCENARIO_KINDS[kind]
