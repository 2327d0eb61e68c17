"""Property-based tests of the condition evaluator (three-valued logic) and of evaluate()."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from drift_decider.policy import CheckRecord, PolicyState, parse_policy
from drift_decider.policy.conditions import All, Any_, Compare, Frame, Node, Not
from drift_decider.policy.expr import parse_expression
from policy_support import decide


METRICS = ("knn_jaccard", "norm_ratio", "index.recall_at_k")
VALUES = (0.1, 0.5, 0.9)          # exact under %g, so describe() round-trips

compares = st.builds(lambda m, op, v: Compare(metric=m, pos="", op=op, value=v),
                     st.sampled_from(METRICS), st.sampled_from(("gt", "gte", "lt", "lte", "eq", "ne")),
                     st.sampled_from(VALUES))
trees = st.recursive(compares, lambda kids: st.one_of(
    st.builds(Not, kids),
    st.builds(lambda c: All(tuple(c)), st.lists(kids, min_size=1, max_size=4)),
    st.builds(lambda c: Any_(tuple(c)), st.lists(kids, min_size=1, max_size=4))), max_leaves=12)
metric_values = st.dictionaries(st.sampled_from(METRICS),
                                st.sampled_from((0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95)))


def run(node: Node, metrics: dict[str, float], trace: bool = True) -> bool | None:
    return node.evaluate(Frame(metrics, 0.0, PolicyState(), [] if trace else None))


def kleene_not(x: bool | None) -> bool | None:
    return None if x is None else not x


def reference(node: Node, metrics: dict[str, float]) -> bool | None:
    """Textbook Kleene logic, written independently of the engine."""
    if isinstance(node, Compare):
        if node.metric not in metrics:
            return None
        x, v = metrics[node.metric], node.value
        return {"gt": x > v, "gte": x >= v, "lt": x < v, "lte": x <= v, "eq": x == v, "ne": x != v}[node.op]
    if isinstance(node, Not):
        return kleene_not(reference(node.child, metrics))
    outs = [reference(c, metrics) for c in node.children]
    if isinstance(node, All):
        return False if False in outs else (None if None in outs else True)
    return True if True in outs else (None if None in outs else False)


@given(trees, metric_values)
def test_matches_textbook_kleene_logic(tree: Node, metrics: dict[str, float]) -> None:
    assert run(tree, metrics) == reference(tree, metrics)


@given(trees, metric_values)
def test_short_circuit_path_equals_full_trace_path(tree: Node, metrics: dict[str, float]) -> None:
    assert run(tree, metrics, trace=False) == run(tree, metrics, trace=True)


@given(trees, metric_values)
def test_not_inverts_and_double_negation_is_identity(tree: Node, metrics: dict[str, float]) -> None:
    assert run(Not(tree), metrics) == kleene_not(run(tree, metrics))
    assert run(Not(Not(tree)), metrics) == run(tree, metrics)


@given(trees, metric_values)
def test_all_or_any_of_one_equals_it(tree: Node, metrics: dict[str, float]) -> None:
    assert run(All((tree,)), metrics) == run(tree, metrics) == run(Any_((tree,)), metrics)


@given(trees, trees, metric_values)
def test_de_morgan(a: Node, b: Node, metrics: dict[str, float]) -> None:
    assert run(Not(All((a, b))), metrics) == run(Any_((Not(a), Not(b))), metrics)
    assert run(Not(Any_((a, b))), metrics) == run(All((Not(a), Not(b))), metrics)


@given(trees, trees, metric_values)
def test_all_and_any_are_commutative(a: Node, b: Node, metrics: dict[str, float]) -> None:
    assert run(All((a, b)), metrics) == run(All((b, a)), metrics)
    assert run(Any_((a, b)), metrics) == run(Any_((b, a)), metrics)


@given(trees, metric_values)
def test_described_tree_parses_back_to_the_same_logic(tree: Node, metrics: dict[str, float]) -> None:
    parsed = parse_expression(tree.describe(),
                              lambda m, op, v, p, off: Compare(metric=m, pos="", op=op, value=v))
    assert run(parsed, metrics) == run(tree, metrics)


POLICY = parse_policy("""\
apiVersion: drift-decider/v1
kind: Policy
metadata: {name: p, version: "1"}
rules:
  - {id: a, action: retrain, priority: 2, for: 2, cooldown: 14d, when: 'knn_jaccard < 0.5'}
  - {id: b, action: recalibrate, priority: 1, cooldown: 7d, when: 'norm_ratio > 1.1 or norm_ratio < 0.9'}
  - {id: c, action: refresh-index, when: 'index.recall_at_k < 0.9'}
  - {id: d, action: retrain, when: {metric: knn_jaccard, slope: {window: 3}, op: lt, value: -0.01}}
""")
T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
checks = st.lists(st.tuples(metric_values,
                            st.sampled_from(("none", "retrain", "recalibrate", "refresh-index")),
                            st.sampled_from(("enforce", "dry-run"))), max_size=8)


def history_of(rows) -> tuple[CheckRecord, ...]:
    n = len(rows)
    return tuple(CheckRecord(f"w{i}", T0 - timedelta(days=7 * (n - i)), m, a, None, None, mode)
                 for i, (m, a, mode) in enumerate(rows))


@settings(max_examples=150)
@given(metric_values, checks)
def test_evaluate_is_deterministic_and_picks_the_first_unsuppressed_match(metrics, rows) -> None:
    first = decide(POLICY, metrics, history_of(rows), T0, context={"model": "m"})
    again = decide(POLICY, dict(metrics), history_of(list(rows)), T0, context={"model": "m"})
    assert first.to_dict() == again.to_dict()
    fired = [r for r in first.rules if r.status == "fired"]
    assert len(fired) <= 1
    assert first.action == (fired[0].action if fired else "none")
    if fired:   # every rule ahead of the winner in precedence either did not match or was held back
        ahead = first.rules[:[r.rule_id for r in first.rules].index(fired[0].rule_id)]
        assert all(r.status in ("not-matched", "unknown") or r.reason in ("not-sustained", "cooldown")
                   for r in ahead)
