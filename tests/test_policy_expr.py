"""The expression language: what it accepts, what it refuses, and that it equals the mapping form."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from drift_decider.errors import PolicyError
from drift_decider.policy import PolicyState, evaluate, parse_policy
from drift_decider.policy.conditions import All, Compare, Not
from drift_decider.policy.expr import MAX_DEPTH, MAX_LENGTH, ExprError, parse_expression

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)


def build(metric, op, value, param, offset):
    return Compare(metric=metric, pos=str(offset), op=op, value=0.0 if value is None else value, param=param)


def shape(node) -> object:
    if isinstance(node, Compare):
        return (node.metric, node.op, node.param or node.value)
    if isinstance(node, Not):
        return ("not", shape(node.child))
    return ("and" if isinstance(node, All) else "or", [shape(c) for c in node.children])


def test_dotted_names_numbers_params_and_flipped_comparisons() -> None:
    node = parse_expression("index.recall_at_k < 0.9 and 0.7 < domain_classifier.auc and mmd2.p_value <= $a",
                            build)
    assert shape(node) == ("and", [("index.recall_at_k", "lt", 0.9), ("domain_classifier.auc", "gt", 0.7),
                                   ("mmd2.p_value", "lte", "a")])


def test_and_binds_tighter_than_or_and_parentheses_group() -> None:
    assert shape(parse_expression("a > 1 or b > 2 and c > 3", build)) == \
        ("or", [("a", "gt", 1.0), ("and", [("b", "gt", 2.0), ("c", "gt", 3.0)])])
    assert shape(parse_expression("(a > 1 or b > 2) and not c == -1e-3", build)) == \
        ("and", [("or", [("a", "gt", 1.0), ("b", "gt", 2.0)]), ("not", ("c", "eq", -0.001))])


@pytest.mark.parametrize("text, message", [
    ("auc.__class__ > 1", "names with '__'"),
    ("__import__('os') > 1", "names with '__'"),
    ("abs(auc) > 1", "calls are not allowed"),
    ("auc() > 1", "calls are not allowed"),
    ("auc[0] > 1", "subscripts are not allowed"),
    ("auc > 'x'", "strings are not allowed"),
    ("auc > 1 ; import os", "not part of the expression language"),
    ("lambda: 1", "not part of the expression language"),
    ("auc + 1 > 2", "not part of the expression language"),
    ("0.1 < auc < 0.9", "chained comparisons"),
    ("auc > knn", "exactly one metric name"),
    ("1 > 2", "exactly one metric name"),
    ("auc >", "found end of expression"),
    ("(auc > 1", "expected ')'"),
    ("auc > 1)", "unexpected ')'"),
    ("auc > 1 and", "found end of expression"),
    ("", "found end of expression"),
    ("auc", "comparison operator"),
])
def test_refused_expressions(text: str, message: str) -> None:
    with pytest.raises(ExprError) as info:
        parse_expression(text, build)
    assert message in str(info.value)


def test_length_and_depth_are_bounded() -> None:
    with pytest.raises(ExprError, match="limit"):
        parse_expression("a > 1 and " * 60 + "a > 1", build)
    deep = "(" * (MAX_DEPTH + 1) + "a > 1" + ")" * (MAX_DEPTH + 1)
    assert len(deep) < MAX_LENGTH
    with pytest.raises(ExprError, match="nested deeper"):
        parse_expression(deep, build)
    with pytest.raises(ExprError, match="nested deeper"):
        parse_expression("not " * (MAX_DEPTH + 1) + "a > 1", build)
    parse_expression("(" * MAX_DEPTH + "a > 1" + ")" * MAX_DEPTH, build)


def test_expression_and_mapping_forms_decide_identically() -> None:
    header = "apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: t, version: '1'}\nrules:\n"
    expr = parse_policy(header + "  - {id: r, action: retrain, when: "
                        "'knn_jaccard < 0.5 and (procrustes.residual > 0.3 "
                        "or not domain_classifier.auc <= 0.7)'}\n")
    mapping = parse_policy(header + """\
  - id: r
    action: retrain
    when:
      all:
        - {metric: knn_jaccard, op: lt, value: 0.5}
        - any:
            - {metric: procrustes.residual, op: gt, value: 0.3}
            - not: {metric: domain_classifier.auc, op: lte, value: 0.7}
""")
    for j in (0.4, 0.6):
        for r in (0.2, 0.4, None):
            for auc in (0.6, 0.8, None):
                m = {k: v for k, v in {"knn_jaccard": j, "procrustes.residual": r,
                                       "domain_classifier.auc": auc}.items() if v is not None}
                a, b = evaluate(expr, m, PolicyState(), T0), evaluate(mapping, m, PolicyState(), T0)
                assert (a.action, a.rules[0].status) == (b.action, b.rules[0].status)


def test_policy_error_points_into_the_expression() -> None:
    text = ("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: t, version: '1'}\nrules:\n"
            "  - {id: r, action: retrain, when: 'knn_jaccard < 0.5 and auc.__class__ > 1'}\n")
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    line = text.splitlines()[4]
    assert info.value.location == f"p.yaml:5:{line.index('auc.__class__') + 1}"
