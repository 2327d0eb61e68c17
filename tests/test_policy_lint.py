"""Lint warnings: contradictions, shadowed rules, unused params; and no false alarms."""

from __future__ import annotations

import pytest

from drift_decider.policy import lint, parse_policy


def warnings_for(rules: str, params: str = "") -> list[str]:
    policy = parse_policy("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: t, version: '1'}\n"
                          f"params: {{{params}}}\nrules:\n{rules}", "p.yaml")
    return [str(w) for w in lint(policy)]


@pytest.mark.parametrize("when", [
    "'norm_ratio > 0.7 and norm_ratio < 0.5'",
    "'norm_ratio >= 0.5 and norm_ratio < 0.5'",
    "'norm_ratio == 1 and norm_ratio > 1'",
    "{all: ['norm_ratio > 0.7', {all: ['knn_jaccard < 1', 'norm_ratio <= 0.7']}]}",
])
def test_contradictions_are_warned(when: str) -> None:
    (warning,) = warnings_for(f"  - {{id: r, action: retrain, when: {when}}}\n")
    assert "can never fire" in warning and "norm_ratio" in warning and warning.startswith("p.yaml:6:")


def test_a_contradiction_under_any_is_a_dead_branch_not_a_rule_that_never_fires() -> None:
    (warning,) = warnings_for("  - {id: r, action: retrain, when: "
                              "{any: ['knn_jaccard < 0.1', {all: ['norm_ratio > 0.7', 'norm_ratio < 0.5']}]}}\n")
    assert "a branch of rule 'r' can never hold" in warning and "can never fire" not in warning


@pytest.mark.parametrize("when", [
    "'norm_ratio > 0.5 and norm_ratio < 0.7'",
    "'norm_ratio >= 0.5 and norm_ratio <= 0.5'",
    "'norm_ratio > 0.7 or norm_ratio < 0.5'",
    "{not: {all: ['norm_ratio > 0.7', 'norm_ratio < 0.5']}}",
    "'norm_ratio != 1 and norm_ratio == 1.5'",
])
def test_satisfiable_conditions_are_not_warned(when: str) -> None:
    assert warnings_for(f"  - {{id: r, action: retrain, when: {when}}}\n") == []


def test_rule_shadowed_by_higher_priority_weaker_rule() -> None:
    out = warnings_for("  - {id: broad, action: retrain, priority: 2, when: 'knn_jaccard < 0.6'}\n"
                       "  - {id: narrow, action: retrain, priority: 1, "
                       "when: 'knn_jaccard < 0.5 and norm_ratio > 1'}\n")
    assert len(out) == 1 and "'narrow' can never fire" in out[0] and "'broad'" in out[0]


@pytest.mark.parametrize("broad_extra", [
    "priority: 2, for: 3",                  # broad needs more checks: narrow can win meanwhile
    "priority: 2, cooldown: 30d",           # broad held back longer than narrow
    "priority: 0",                          # narrow outranks broad
])
def test_no_shadowing_when_the_stronger_rule_can_still_win(broad_extra: str) -> None:
    rules = (f"  - {{id: broad, action: retrain, {broad_extra}, when: 'knn_jaccard < 0.6'}}\n"
             "  - {id: narrow, action: retrain, priority: 1, cooldown: 7d, when: 'knn_jaccard < 0.5'}\n")
    assert warnings_for(rules) == []


def test_no_shadowing_when_conditions_do_not_imply() -> None:
    assert warnings_for("  - {id: a, action: retrain, priority: 2, when: 'knn_jaccard < 0.5'}\n"
                        "  - {id: b, action: retrain, priority: 1, when: 'knn_jaccard < 0.6'}\n") == []


def test_unused_param_is_warned() -> None:
    out = warnings_for("  - {id: r, action: retrain, when: 'knn_jaccard < $low'}\n",
                       params="low: 0.5, spare: 1")
    assert out == ["p.yaml: warning: param 'spare' is never used"]


def test_unused_named_condition_is_warned_where_it_is_defined() -> None:
    policy = parse_policy("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: t, version: '1'}\n"
                          "conditions:\n"
                          "  low: 'knn_jaccard < 0.5'\n"
                          "  drifted: {all: [{condition: low}, 'norm_ratio > 1.2']}\n"
                          "  spare: {condition: only-spare-uses-me}\n"
                          "  only-spare-uses-me: 'norm_ratio > 2'\n"
                          "rules:\n  - {id: r, action: retrain, when: {condition: drifted}}\n", "p.yaml")
    assert [str(w) for w in lint(policy)] == [
        "p.yaml:7:3: warning: named condition 'spare' is never used by a rule",
        "p.yaml:8:3: warning: named condition 'only-spare-uses-me' is never used by a rule"]
