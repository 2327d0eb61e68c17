"""Evaluation semantics: precedence, for/cooldown, unknown data, trends, determinism, the record."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import drift_decider.policy
from drift_decider.errors import InputError
from drift_decider.policy import CheckRecord, PolicyState, evaluate, parse_policy, records_from_dicts
from policy_support import T0, decide, weekly

EMPTY = ()


def make(rules: str, params: str = "", mode: str = "enforce"):
    return parse_policy(f"apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {{name: t, version: '1'}}\n"
                        f"mode: {mode}\nparams: {{{params}}}\nrules:\n{rules}")


def test_no_rule_fires_gives_none() -> None:
    p = make("  - {id: r, action: retrain, when: 'knn_jaccard < 0.5'}\n")
    d = decide(p, {"knn_jaccard": 0.9}, EMPTY, T0)
    assert (d.action, d.rule_id, d.severity) == ("none", None, None)
    assert d.rules[0].status == "not-matched"


def test_priority_wins_then_heavier_action_then_file_order() -> None:
    p = make("  - {id: light-high, action: refresh-index, priority: 5, when: 'knn_jaccard < 1'}\n"
             "  - {id: heavy-low, action: retrain, priority: 1, when: 'knn_jaccard < 1'}\n")
    assert decide(p, {"knn_jaccard": 0.5}, EMPTY, T0).rule_id == "light-high"
    tie = make("  - {id: light, action: refresh-index, when: 'knn_jaccard < 1'}\n"
               "  - {id: heavy, action: retrain, when: 'knn_jaccard < 1'}\n"
               "  - {id: heavy2, action: retrain, when: 'knn_jaccard < 1'}\n")
    d = decide(tie, {"knn_jaccard": 0.5}, EMPTY, T0)
    assert (d.action, d.rule_id) == ("retrain", "heavy")
    assert {(r.rule_id, r.reason) for r in d.suppressed} == {("light", "outranked"), ("heavy2", "outranked")}


def test_missing_metric_is_unknown_and_not_inverts_to_unknown() -> None:
    p = make("  - {id: r, action: retrain, when: {not: 'domain_classifier.auc > 0.7'}}\n")
    d = decide(p, {}, EMPTY, T0)
    assert d.action == "none" and d.rules[0].status == "unknown"
    (cond,) = d.to_dict()["conditions"]
    assert (cond["metric"], cond["value"], cond["outcome"]) == ("domain_classifier.auc", None, "unknown")
    assert decide(p, {"domain_classifier.auc": 0.6}, EMPTY, T0).action == "retrain"


def test_nan_and_inf_count_as_missing() -> None:
    p = make("  - {id: r, action: retrain, when: 'knn_jaccard < 0.5 or knn_jaccard >= 0.5'}\n")
    for bad in (math.nan, math.inf, -math.inf):
        assert decide(p, {"knn_jaccard": bad}, EMPTY, T0).rules[0].status == "unknown"


@pytest.mark.parametrize("metrics", [{"knn_jaccard": "0.4"}, {"knn_jaccard": True}, [("knn_jaccard", 0.4)]])
def test_bad_metric_values_are_input_errors(metrics) -> None:
    p = make("  - {id: r, action: retrain, when: 'knn_jaccard < 0.5'}\n")
    with pytest.raises(InputError):
        decide(p, metrics, EMPTY, T0)


def test_for_counts_current_plus_consecutive_history_recomputed() -> None:
    p = make("  - {id: r, action: retrain, for: 3, when: 'knn_jaccard < 0.5'}\n")
    bad, good = {"knn_jaccard": 0.4}, {"knn_jaccard": 0.6}
    assert decide(p, bad, weekly([bad, bad]), T0).action == "retrain"
    d = decide(p, bad, weekly([bad, good, bad]), T0)
    assert d.action == "none"
    held_2_of_3 = "held on 2 of 3 consecutive checks"
    assert (d.suppressed[0].reason, d.suppressed[0].detail) == ("not-sustained", held_2_of_3)
    assert decide(p, bad, weekly([good, bad]), T0).suppressed[0].detail == held_2_of_3
    assert decide(p, bad, weekly([bad]), T0).action == "none"       # not enough history
    assert decide(p, bad, weekly([{}, bad]), T0).action == "none"   # an unknown check breaks the run


def test_cooldown_counts_only_enforced_same_or_heavier_actions_in_window() -> None:
    p = make("  - {id: r, action: recalibrate, cooldown: 7d, when: 'norm_ratio > 1.2'}\n")
    m = {"norm_ratio": 1.5}

    def at(days_ago: float, action: str, mode: str = "enforce") -> tuple[CheckRecord, ...]:
        return (CheckRecord("w", T0 - timedelta(days=days_ago), {}, action, None, None, mode),)

    assert decide(p, m, at(3, "recalibrate"), T0).suppressed[0].reason == "cooldown"
    assert decide(p, m, at(3, "retrain"), T0).suppressed[0].reason == "cooldown"          # heavier
    assert decide(p, m, at(3, "refresh-index"), T0).action == "recalibrate"               # lighter
    assert decide(p, m, at(3, "recalibrate", "dry-run"), T0).action == "recalibrate"      # not enforced
    assert decide(p, m, at(7, "recalibrate"), T0).action == "recalibrate"                 # window over
    assert decide(p, m, at(-1, "recalibrate"), T0).action == "recalibrate"                # in the future


def test_dry_run_policy_marks_decision() -> None:
    p = make("  - {id: r, action: retrain, when: 'knn_jaccard < 0.5'}\n", mode="dry-run")
    d = decide(p, {"knn_jaccard": 0.1}, EMPTY, T0)
    assert d.action == "retrain" and d.dry_run and d.to_dict()["mode"] == "dry-run"
    assert "DRY-RUN" in d.explain()


def test_slope_matches_least_squares_over_time() -> None:
    rng = np.random.default_rng(7)
    values = list(rng.uniform(0.4, 0.9, size=6))
    hist = weekly([{"knn_jaccard": v} for v in values[:-1]])
    p = make("  - {id: r, action: retrain, "
             "when: {metric: knn_jaccard, slope: {window: 6}, op: lt, value: 0}}\n")
    d = decide(p, {"knn_jaccard": values[-1]}, hist, T0)
    expected = np.polyfit(np.arange(6) * 7.0, values, 1)[0]
    assert d.to_dict()["conditions"][0]["value"] == pytest.approx(expected, rel=1e-9)
    assert d.action == ("retrain" if expected < 0 else "none")
    short = decide(p, {"knn_jaccard": values[-1]}, weekly([{"knn_jaccard": v} for v in values[:3]]), T0)
    assert short.rules[0].status == "unknown"


def test_projection_fires_only_when_the_crossing_is_inside_the_horizon() -> None:
    rule = ("  - {id: r, action: retrain, when: {metric: knn_jaccard, projected: {window: 3, within: 14d}, "
            "op: lt, value: 0.5}}\n")
    p = make(rule)
    falling_fast = weekly([{"knn_jaccard": 0.80}, {"knn_jaccard": 0.70}])      # -0.1/week: 0.4 in 2 weeks
    d = decide(p, {"knn_jaccard": 0.60}, falling_fast, T0)
    cond = d.to_dict()["conditions"][0]
    assert d.action == "retrain" and cond["value"] == pytest.approx(0.40)
    assert cond["detail"]["days_to_threshold"] == pytest.approx(7.0)
    falling_slow = weekly([{"knn_jaccard": 0.64}, {"knn_jaccard": 0.62}])     # -0.02/week: 0.56 in 2 weeks
    assert decide(p, {"knn_jaccard": 0.60}, falling_slow, T0).action == "none"


def ewma_reference(values, lam, target, sigma, L):
    z = target
    for x in values:
        z = lam * x + (1 - lam) * z
    t = len(values)
    return z, L * sigma * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))


def test_ewma_alarm_agrees_with_a_direct_computation_over_random_series() -> None:
    p = make("  - {id: r, action: recalibrate, when: {metric: scores.mean_shift, "
             "ewma: {lambda: 0.3, target: 0, sigma: 0.01, L: 2.5, side: upper}}}\n")
    rng = np.random.default_rng(11)
    alarms = 0
    for _ in range(200):
        series = list(rng.normal(rng.uniform(0, 0.015), 0.01, size=rng.integers(1, 12)))
        hist = weekly([{"scores.mean_shift": v} for v in series[:-1]])
        d = decide(p, {"scores.mean_shift": series[-1]}, hist, T0)
        z, width = ewma_reference(series, 0.3, 0.0, 0.01, 2.5)
        assert d.to_dict()["conditions"][0]["value"] == pytest.approx(z)
        assert (d.action == "recalibrate") == (z > width)
        alarms += z > width
    assert 0 < alarms < 200      # both branches exercised


def test_cusum_alarm_agrees_with_a_direct_computation() -> None:
    p = make("  - {id: r, action: retrain, when: {metric: knn_jaccard, "
             "cusum: {target: 0.9, sigma: 0.03, k: 0.5, h: 4, side: lower}}}\n")
    rng = np.random.default_rng(3)
    alarms = 0
    for _ in range(200):
        series = list(rng.normal(0.9 - rng.uniform(0, 0.06), 0.03, size=rng.integers(1, 15)))
        s = 0.0
        for x in series:
            s = max(0.0, s - (x - 0.9) / 0.03 - 0.5)
        d = decide(p, {"knn_jaccard": series[-1]}, weekly([{"knn_jaccard": v} for v in series[:-1]]), T0)
        assert d.to_dict()["conditions"][0]["value"] == pytest.approx(s)
        assert (d.action == "retrain") == (s > 4)
        alarms += s > 4
    assert 0 < alarms < 200


def test_cusum_in_control_false_alarm_rate_is_small() -> None:
    """With k=0.5, h=5 the in-control ARL is about 930 for one side; over 20 checks alarms stay rare."""
    p = make("  - {id: r, action: retrain, when: {metric: knn_jaccard, "
             "cusum: {target: 0.9, sigma: 0.03, k: 0.5, h: 5, side: lower}}}\n")
    rng = np.random.default_rng(5)
    alarms = 0
    for _ in range(500):
        series = list(rng.normal(0.9, 0.03, size=20))
        d = decide(p, {"knn_jaccard": series[-1]}, weekly([{"knn_jaccard": v} for v in series[:-1]]), T0)
        alarms += d.action == "retrain"
    assert alarms / 500 < 0.03


def test_same_inputs_same_decision_and_id_different_inputs_different_id() -> None:
    p = make("  - {id: r, action: retrain, when: 'knn_jaccard < 0.5'}\n")
    hist = weekly([{"knn_jaccard": 0.7}])
    ctx = {"model": "recs", "version": "3", "window_id": "2026-w10"}
    a = decide(p, {"knn_jaccard": 0.4}, hist, T0, context=ctx)
    rows = [check.to_dict() for check in hist]
    b = decide(p, {"knn_jaccard": 0.4}, records_from_dicts(rows), T0, context=dict(ctx))
    assert a.to_dict() == b.to_dict()
    variants = [
        decide(p, {"knn_jaccard": 0.41}, hist, T0, context=ctx),
        decide(p, {"knn_jaccard": 0.4}, weekly([{"knn_jaccard": 0.71}]), T0, context=ctx),
        decide(p, {"knn_jaccard": 0.4}, hist, T0, context={**ctx, "version": "4"}),
        decide(p, {"knn_jaccard": 0.4}, hist, T0 + timedelta(seconds=1), context=ctx),
        decide(make("  - {id: r, action: retrain, when: 'knn_jaccard < 0.6'}\n"), {"knn_jaccard": 0.4},
                 hist, T0, context=ctx),
    ]
    ids = {a.decision_id} | {v.decision_id for v in variants}
    assert len(ids) == 6


def test_decision_record_is_json_safe_and_complete() -> None:
    p = make("  - {id: r, action: retrain, for: 2, severity: critical, "
             "explain: 'j={knn_jaccard:.2f} below {$low}', when: 'knn_jaccard < $low'}\n"
             "  - {id: s, action: refresh-index, when: 'index.coverage < 0.9'}\n", params="low: 0.5")
    d = decide(p, {"knn_jaccard": 0.4, "index.coverage": 0.5}, weekly([{"knn_jaccard": 0.3}]), T0,
                 context={"model": "m"})
    record = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert record["action"] == "retrain" and record["rule_id"] == "r" and record["severity"] == "critical"
    assert record["explanation"] == "j=0.40 below 0.5"
    assert record["policy"] == {"name": "t", "version": "1", "sha256": p.sha256}
    assert record["suppressed"] == [{"rule": "s", "action": "refresh-index", "reason": "outranked",
                                     "detail": "rule r (retrain) takes precedence"}]
    assert record["matched"] == ["r", "s"]
    by_metric = {c["metric"]: c for c in record["conditions"]}
    assert by_metric["knn_jaccard"]["threshold"] == 0.5 and by_metric["knn_jaccard"]["outcome"] == "true"
    assert record["inputs"]["metrics"] == {"index.coverage": 0.5, "knn_jaccard": 0.4}
    assert record["inputs"]["history"]["checks"] == 1 and record["inputs"]["context"] == {"model": "m"}
    assert record["decided_at"] == "2026-03-02T00:00:00Z"
    text = d.explain()
    assert "Decision: retrain (rule r" in text and "j=0.40 below 0.5" in text and "outranked" in text


def test_naive_now_is_utc_and_history_round_trips() -> None:
    hist = records_from_dicts([{"window_id": "a", "window_end": "2026-03-01T00:00:00Z",
                                "metrics": {"knn_jaccard": 0.5}, "action": "retrain", "mode": "dry-run"}])
    assert records_from_dicts([c.to_dict() for c in hist]) == hist
    assert hist[0].decided_at == hist[0].window_end      # defaults to the window end
    p = make("  - {id: r, action: retrain, when: 'knn_jaccard < 0.5'}\n")
    assert decide(p, {}, hist, T0.replace(tzinfo=None)).decision_id == decide(p, {}, hist, T0).decision_id


@pytest.mark.parametrize("rows, message", [
    ([{"window_end": "yesterday"}], "not an ISO 8601 time"),
    ([{"window_end": "2026-01-01", "action": "panic"}], "unknown action"),
    ([{"window_end": "2026-01-01", "mode": "maybe"}], "unknown mode"),
    ([{"window_end": "2026-01-01", "metrics": {"x": "1"}}], "must be a number"),
    ([{"metrics": {}}], "missing 'window_end'"),
    ([{"window_end": "2026-01-01", "colour": 1}], "unknown keys"),
    ({"checks": []}, "must be a list"),
    ([3], "expected a mapping"),
])
def test_bad_history_is_an_input_error(rows, message) -> None:
    with pytest.raises(InputError, match=message):
        records_from_dicts(rows)


def test_trace_lists_every_condition_even_after_a_decisive_one() -> None:
    """The recorded trace has every condition, also those after the one that settled the rule."""
    p = make("  - {id: r, action: retrain, when: 'knn_jaccard < 0.5 and norm_ratio > 1.1 and mmd2 > 0.1'}\n")
    d = decide(p, {"knn_jaccard": 0.9, "norm_ratio": 1.5}, EMPTY, T0)
    outcomes = [(c["metric"], c["outcome"]) for c in d.to_dict()["conditions"]]
    assert outcomes == [("knn_jaccard", "false"), ("norm_ratio", "true"), ("mmd2", "unknown")]
    assert d.rules[0].status == "not-matched"


def test_missing_condition_lets_a_gate_fail_closed() -> None:
    p = make("  - {id: gate, action: retrain, when: {any: [{metric: domain_classifier.auc, missing: true}, "
             "'domain_classifier.auc > 0.7']}}\n")
    assert decide(p, {}, EMPTY, T0).rule_id == "gate"
    assert decide(p, {"domain_classifier.auc": math.nan}, EMPTY, T0).rule_id == "gate"
    assert decide(p, {"domain_classifier.auc": 0.6}, EMPTY, T0).action == "none"
    assert decide(p, {"domain_classifier.auc": 0.8}, EMPTY, T0).action == "retrain"


def test_explain_template_renders_params_formats_and_missing_values() -> None:
    p = make("  - {id: r, action: retrain, explain: 'j={knn_jaccard:.1%} auc={domain_classifier.auc} "
             "limit={$low:.2f}', when: 'knn_jaccard < $low'}\n", params="low: 0.5")
    d = decide(p, {"knn_jaccard": 0.25}, EMPTY, T0)
    assert d.explanation == "j=25.0% auc=n/a limit=0.50"


def snapshot(value: object) -> object:
    """Everything reachable from ``value`` as plain data (a hash object as its digest so far)."""
    if isinstance(value, (str, bytes, int, float, bool, type(None), datetime)):
        return value
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return (type(value).__name__, [snapshot(v) for v in value])
    if hasattr(value, "hexdigest"):
        return ("hash", value.hexdigest())
    slots = {name: getattr(value, name) for name in getattr(value, "__slots__", ()) if hasattr(value, name)}
    fields = {**getattr(value, "__dict__", {}), **slots}
    return (type(value).__name__, {k: snapshot(v) for k, v in fields.items()})


def test_evaluate_writes_nothing_into_its_arguments() -> None:
    """Pure: a policy using every kind of memory (for, keep_firing_for, cooldown, trends, charts), a
    state folded from a history, metrics and context are exactly as they were after deciding."""
    p = make("  - {id: a, action: retrain, for: 2, keep_firing_for: 2, cooldown: 3d,\n"
             "     when: 'knn_jaccard < 0.5'}\n"
             "  - {id: b, action: recalibrate,\n"
             "     when: {metric: knn_jaccard, slope: {window: 3}, op: lt, value: 0}}\n"
             "  - {id: c, action: refresh-index, for: 3,\n"
             "     when: {all: [{metric: norm_ratio, ewma: {lambda: 0.3, target: 1, sigma: 0.02}},\n"
             "                  {metric: norm_ratio, cusum: {target: 1, sigma: 0.02}}]}}\n"
             "  - {id: d, action: retrain,\n"
             "     when: {metric: knn_jaccard, projected: {window: 3, within: 7d}, op: lt, value: 0.3}}\n")
    rng = np.random.default_rng(1)
    values = [{"knn_jaccard": float(rng.uniform(0.3, 0.7)), "norm_ratio": float(rng.normal(1.05, 0.02))}
              for _ in range(8)]
    history = weekly(values, ["none", "retrain"] * 4)
    state = PolicyState().after_all(p, history)
    metrics, context = {"knn_jaccard": 0.4, "norm_ratio": 1.1}, {"model": "m"}
    before = snapshot((p, metrics, state, context))
    first = evaluate(p, metrics, state, T0, context=context)
    assert snapshot((p, metrics, state, context)) == before
    assert evaluate(p, metrics, state, T0, context=context) == first
    assert {r.status for r in first.rules} >= {"fired", "suppressed"}


def test_the_policy_package_keeps_no_lock_and_no_cache() -> None:
    """Deciding reads only its arguments: nothing in policy/ is shared between calls behind their back."""
    for path in Path(drift_decider.policy.__file__).parent.glob("*.py"):
        text = path.read_text()
        for word in ("threading", "Lock(", "lru_cache", "functools.cache", "global "):
            assert word not in text, f"{path.name}: {word}"
