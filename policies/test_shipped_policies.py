"""CI for the shipped policies: each one validates without warnings and its test file passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from drift_decider.policy import lint, load_policy
from drift_decider.policy.policy_tests import run_test_file

HERE = Path(__file__).parent
POLICIES = sorted(HERE.glob("*.yaml"))


def test_the_three_documented_policies_ship() -> None:
    assert {p.stem for p in POLICIES} >= {"recommender-default", "conservative", "promotion-gate"}


@pytest.mark.parametrize("policy_path", POLICIES, ids=lambda p: p.stem)
def test_policy_is_clean_and_its_tests_pass(policy_path: Path) -> None:
    policy = load_policy(policy_path)
    assert lint(policy) == []
    test_file = HERE / "tests" / f"{policy_path.stem}.test.yaml"
    assert test_file.is_file(), f"{policy_path.name} has no test file {test_file}"
    result = run_test_file(test_file)
    assert Path(result.policy).resolve() == policy_path.resolve()
    assert result.expectations >= 5
    assert result.ok, "\n\n".join(f.render() for f in result.failures)
