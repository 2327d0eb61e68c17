"""Named conditions: a ``conditions:`` section, referenced as ``{condition: name}`` and expanded at load
time into the plain tree the engine evaluates; its errors are located like every other policy error.
Trees are compared, not decisions: the engine is not involved (the shipped default policy's tests
decide through named conditions)."""

from __future__ import annotations

import textwrap

import pytest

from drift_decider.errors import PolicyError
from drift_decider.policy import lint, parse_policy
from drift_decider.policy.conditions import All, Any_, Not

HEADER = "apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: t, version: '1'}\n"


def policy(body: str) -> str:
    return HEADER + textwrap.dedent(body)


def error_of(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    return info.value


def at(text: str, line: int, token: str) -> str:
    """The location of ``token`` on 1-based ``line`` of ``text``."""
    return f"p.yaml:{line}:{text.splitlines()[line - 1].index(token) + 1}"


def test_a_reference_expands_to_the_tree_written_in_place() -> None:
    text = policy("""\
        conditions:
          stable: {any: ["knn_jaccard >= 0.5", {metric: knn_jaccard, missing: true}]}
        rules:
          - {id: r, action: recalibrate, when: {all: ["norm_ratio > 1.2", {condition: stable}]}}
        """)
    named = parse_policy(text, "p.yaml")
    inline = parse_policy(policy("""\
        rules:
          - {id: r, action: recalibrate, when: {all: ["norm_ratio > 1.2",
              {any: ["knn_jaccard >= 0.5", {metric: knn_jaccard, missing: true}]}]}}
        """))
    (rule,), (same,) = named.rules, inline.rules
    assert isinstance(rule.when, All) and isinstance(rule.when.children[1], Any_)
    assert rule.when.describe() == same.when.describe()
    assert [type(leaf) for leaf in rule.when.leaves()] == [type(leaf) for leaf in same.when.leaves()]
    assert rule.when.children[1].children[0].pos == at(text, 5, "knn_jaccard >=")   # where it is written


def test_named_conditions_nest_and_each_reference_gets_its_own_tree() -> None:
    p = parse_policy(policy("""\
        conditions:
          low: "knn_jaccard < 0.5"
          drifted: {all: [{condition: low}, "norm_ratio > 1.2"]}
        rules:
          - {id: a, action: retrain, when: {condition: drifted}}
          - {id: b, action: recalibrate, when: {not: {condition: drifted}}}
        """))
    a, b = p.rules
    assert isinstance(b.when, Not) and a.when.describe() == b.when.child.describe()
    assert a.when.describe() == "(knn_jaccard < 0.5 and norm_ratio > 1.2)"
    assert a.when is not b.when.child


def test_a_param_inside_a_named_condition_resolves_as_in_a_rule() -> None:
    p = parse_policy(policy("""\
        params: {floor: 0.5}
        conditions:
          low: "knn_jaccard < $floor"
          low-too: {metric: knn_jaccard, op: lt, value: $floor}
        rules:
          - {id: r, action: retrain, when: {all: [{condition: low}, {condition: low-too}]}}
        """))
    leaves = p.rules[0].when.leaves()
    assert [(leaf.value, leaf.param) for leaf in leaves] == [(0.5, "floor"), (0.5, "floor")]
    assert lint(p) == []                              # the param counts as used
    text = policy("""\
        conditions:
          low: "knn_jaccard < $flor"
        rules:
          - {id: r, action: retrain, when: {condition: low}}
        """)
    err = error_of(text)
    assert "unknown param '$flor'" in str(err) and err.location == at(text, 5, "knn_jaccard")


@pytest.mark.parametrize("conditions, cycle, line, token", [
    ("  a: {condition: a}\n", "a -> a", 5, "a}"),
    ("  a: {all: ['norm_ratio > 1', {condition: b}]}\n  b: {not: {condition: a}}\n", "a -> b -> a", 6, "a}"),
])
def test_a_cycle_is_an_error_at_the_reference_that_closes_it(conditions: str, cycle: str, line: int,
                                                              token: str) -> None:
    text = HEADER + "conditions:\n" + conditions + "rules:\n  - {id: r, action: retrain, when: {condition: a}}\n"
    err = error_of(text)
    assert f"cycle: {cycle}" in str(err) and err.location == at(text, line, token)


def test_an_unknown_name_is_an_error_at_the_reference_with_a_suggestion() -> None:
    text = policy("""\
        conditions:
          no-change-pending: "knn_jaccard > 0.5"
        rules:
          - {id: r, action: retrain, when: {condition: no-change-pendng}}
        """)
    err = error_of(text)
    assert "unknown condition 'no-change-pendng'" in str(err) and "did you mean 'no-change-pending'" in str(err)
    assert err.location == at(text, 7, "no-change-pendng")
    text = HEADER + "rules:\n  - {id: r, action: retrain, when: {condition: x}}\n"
    err = error_of(text)
    assert "has no 'conditions' section" in str(err) and err.location == at(text, 5, "x}")


@pytest.mark.parametrize("body, message, line, token", [
    # a bad definition is an error even when no rule uses it
    ("conditions:\n  spare: 'knn_jacard > 1'\n", "unknown metric 'knn_jacard'", 5, "knn_jacard"),
    ("conditions:\n  spare: 3\n", "must be a mapping or an expression string, got integer", 5, "3"),
    ("conditions:\n  Bad_Name: 'knn_jaccard > 1'\n", "condition name 'Bad_Name' must match", 5, "Bad_Name"),
    ("conditions: ['knn_jaccard > 1']\n", "expected a mapping of name to condition", 4, "["),
    ("conditions:\n  c: {condition: 1}\n", "takes the name of a named condition, got integer", 5, "1}"),
    ("conditions:\n  c: {condition: d, metric: knn_jaccard}\n  d: 'knn_jaccard > 1'\n",
     "'condition' cannot be combined with other keys (found 'metric')", 5, "metric"),
])
def test_bad_definitions_are_located_errors(body: str, message: str, line: int, token: str) -> None:
    text = HEADER + body + "rules:\n  - {id: r, action: retrain, when: 'norm_ratio > 1'}\n"
    err = error_of(text)
    assert message in str(err) and err.location == at(text, line, token)


def test_the_depth_limit_counts_the_expanded_tree() -> None:
    def nots(inner: str) -> str:
        return "{not: " * 10 + inner + "}" * 10

    text = HEADER + (f"conditions:\n  deep: {nots(repr('knn_jaccard < 1'))}\n"
                     f"rules:\n  - {{id: r, action: retrain, when: {nots('{condition: deep}')}}}\n")
    assert "nested deeper than 16 levels" in str(error_of(text))


def test_a_long_chain_of_references_is_nesting_too() -> None:
    """Each reference is a level: a chain of 350 names once crashed the loader with RecursionError."""
    chain = "".join(f"  c{i}: {{condition: c{i + 1}}}\n" for i in range(349)) + "  c349: 'knn_jaccard < 0.5'\n"
    text = HEADER + f"conditions:\n{chain}rules:\n  - {{id: r, action: retrain, when: {{condition: c0}}}}\n"
    assert "nested deeper than 16 levels" in str(error_of(text))


def test_the_expansion_cap_counts_the_comparisons_in_expressions() -> None:
    """An expression string of 22 comparisons repeated 16 x 16 x 16 times is 90,112 comparisons from a
    1.5 kB file: refused, although it is only 4,096 expressions."""
    expr = " or ".join(["index.coverage < 0"] * 22)
    levels = "".join(f"  c{i}: {{any: [{', '.join([f'{{condition: c{i - 1}}}'] * 16)}]}}\n" for i in range(1, 4))
    text = (HEADER + f"conditions:\n  c0: '{expr}'\n{levels}"
            "rules:\n  - {id: r, action: retrain, when: {condition: c3}}\n")
    assert "expand to more than 10000 conditions" in str(error_of(text))
