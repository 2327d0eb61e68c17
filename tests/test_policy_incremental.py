"""What a PolicyState folds (trend windows and their sums, EWMA/CUSUM states, ``for`` streaks,
enforced actions for cooldowns) against computations from scratch, and folding check by check
against folding all records at once.

References here recompute each quantity directly from the checks (numpy least squares, plain
recursions, one evaluation per truncated history, a linear scan for cooldowns), so a state that
folded a check wrongly, or carried a wrong part of the past, fails.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from drift_decider.errors import InputError
from drift_decider.policy import CheckRecord, PolicyState, evaluate, parse_policy
from drift_decider.policy.records import canonical_json
from policy_support import decide
from test_policy_golden import metrics as golden_metrics, policy_text

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
POLICY = parse_policy("""\
apiVersion: drift-decider/v1
kind: Policy
metadata: {name: incremental, version: "1"}
rules:
  - {id: slope, action: retrain, for: 3, when: {metric: knn_jaccard, slope: {window: 4}, op: lt, value: 0}}
  - {id: projected, action: retrain, for: 2,
     when: {metric: knn_jaccard, projected: {window: 3, within: 10d}, op: lt, value: 0.45}}
  - {id: ewma, action: recalibrate, for: 2,
     when: {metric: norm_ratio, ewma: {lambda: 0.3, target: 1.0, sigma: 0.02, L: 2.5}}}
  - {id: cusum, action: recalibrate, for: 3,
     when: {metric: norm_ratio, cusum: {target: 1.0, sigma: 0.02, k: 0.5, h: 3, side: upper}}}
  - {id: cusum-twin, action: refresh-index, cooldown: 10d,
     when: {metric: norm_ratio, cusum: {target: 1.0, sigma: 0.02, k: 0.5, h: 2, side: both}}}
  - {id: plain, action: refresh-index, for: 4, cooldown: 3d, when: 'index.recall_at_k < 0.5'}
""")
RULES = {rule.id: rule for rule in POLICY.rules}


def random_history(rng: np.random.Generator, n: int) -> tuple[CheckRecord, ...]:
    """Irregular times (so slopes are not on a grid), missing values, enforced and dry-run actions."""
    checks, t = [], T0 - timedelta(days=8 * n)
    for i in range(n):
        t += timedelta(days=float(rng.uniform(2, 12)))
        metrics = {"knn_jaccard": float(0.7 - 0.02 * i + rng.normal(0, 0.05)),
                   "norm_ratio": float(1.0 + rng.normal(0.01 * (i % 5), 0.02)),
                   "index.recall_at_k": float(rng.uniform(0, 1))}
        for name in list(metrics):
            if rng.random() < 0.08:
                del metrics[name]
        checks.append(CheckRecord(f"w{i}", t, metrics, str(rng.choice(["none", "none", "refresh-index",
                                                                       "recalibrate", "retrain"])),
                                  None, t + timedelta(hours=float(rng.uniform(0, 30))),
                                  str(rng.choice(["enforce", "enforce", "dry-run"]))))
    return tuple(checks)


def condition_of(decision, rule_id: str) -> dict:
    (rule,) = [r for r in decision.rules if r.rule_id == rule_id]
    return rule.conditions[0]


def days(moment: datetime) -> float:
    return moment.timestamp() / 86400.0


def held_from_scratch(history: tuple[CheckRecord, ...], index: int, rule_id: str) -> bool:
    """Did the rule's condition hold at check ``index``? Evaluated as if it were the current check,
    on the checks before it and with a policy in which nothing holds it back."""
    check = history[index]
    alone = parse_policy(POLICY_ONE.format(when=RULE_WHEN[rule_id]))
    decision = decide(alone, check.metrics, history[:index], check.decided_at)
    return decision.action != "none"


RULE_WHEN = {
    "slope": "{metric: knn_jaccard, slope: {window: 4}, op: lt, value: 0}",
    "projected": "{metric: knn_jaccard, projected: {window: 3, within: 10d}, op: lt, value: 0.45}",
    "ewma": "{metric: norm_ratio, ewma: {lambda: 0.3, target: 1.0, sigma: 0.02, L: 2.5}}",
    "cusum": "{metric: norm_ratio, cusum: {target: 1.0, sigma: 0.02, k: 0.5, h: 3, side: upper}}",
    "plain": "'index.recall_at_k < 0.5'",
}
POLICY_ONE = ("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {{name: one, version: '1'}}\n"
              "rules:\n  - {{id: r, action: retrain, when: {when}}}\n")


def test_trend_values_match_direct_formulas_on_random_histories() -> None:
    rng = np.random.default_rng(2026)
    compared = 0
    for _ in range(60):
        history = random_history(rng, int(rng.integers(0, 14)))
        now = history[-1].decided_at + timedelta(days=7) if len(history) else T0
        current = {"knn_jaccard": float(rng.uniform(0.3, 0.8)), "norm_ratio": float(rng.normal(1.02, 0.03))}
        d = decide(POLICY, current, history, now)
        knn = [(days(c.decided_at), c.metrics.get("knn_jaccard")) for c in history]
        last4 = knn[-3:] + [(days(now), current["knn_jaccard"])]
        slope = condition_of(d, "slope")["value"]
        if len(history) >= 3 and all(v is not None for _, v in last4):
            t, v = np.array(last4).T
            assert slope == pytest.approx(np.polyfit(t, v, 1)[0], rel=1e-9, abs=1e-12)
            compared += 1
        else:
            assert slope is None
        ratios = [c.metrics["norm_ratio"] for c in history if "norm_ratio" in c.metrics]
        ratios.append(current["norm_ratio"])
        z = 1.0
        hi = 0.0
        for x in ratios:
            z = 0.3 * x + 0.7 * z
            hi = max(0.0, hi + (x - 1.0) / 0.02 - 0.5)
        assert condition_of(d, "ewma")["value"] == pytest.approx(z, rel=1e-12)
        assert condition_of(d, "cusum")["value"] == pytest.approx(hi, rel=1e-12, abs=1e-12)
        width = 2.5 * 0.02 * math.sqrt(0.3 / 1.7 * (1 - 0.7 ** (2 * len(ratios))))
        assert condition_of(d, "ewma")["outcome"] == ("true" if abs(z - 1.0) > width else "false")
    assert compared > 10


@pytest.mark.parametrize("seed, rule_id", list(enumerate(["slope", "projected", "ewma", "cusum", "plain"])))
def test_for_equals_the_condition_recomputed_on_each_truncated_history(seed: int, rule_id: str) -> None:
    """``for: N`` suppression, and the run length it reports, match separate from-scratch evaluations
    of the earlier checks."""
    rng = np.random.default_rng(seed)
    rule = RULES[rule_id]
    runs = set()
    for _ in range(120):
        history = random_history(rng, int(rng.integers(0, 10)))
        current = {"knn_jaccard": float(rng.uniform(0.2, 0.6)), "norm_ratio": float(rng.normal(1.06, 0.02)),
                   "index.recall_at_k": float(rng.uniform(0, 0.6))}
        now = history[-1].decided_at + timedelta(days=5) if len(history) else T0
        d = decide(POLICY, current, history, now)
        (outcome,) = [r for r in d.rules if r.rule_id == rule_id]
        if outcome.status not in ("fired", "suppressed"):
            continue
        held = 1
        for index in range(len(history) - 1, len(history) - rule.sustain, -1):
            if index < 0 or not held_from_scratch(history, index, rule_id):
                break
            held += 1
        if held < rule.sustain:
            assert (outcome.reason, outcome.detail) == (
                "not-sustained", f"held on {held} of {rule.sustain} consecutive checks")
        else:
            assert outcome.reason != "not-sustained"
        runs.add(held)
    assert runs == set(range(1, rule.sustain + 1))      # every run length was exercised


def test_cooldown_equals_a_linear_scan_over_the_checks() -> None:
    rng = np.random.default_rng(9)
    seen = set()
    for _ in range(150):
        history = random_history(rng, int(rng.integers(0, 12)))
        now = T0 + timedelta(days=float(rng.uniform(-40, 10)))
        d = decide(POLICY, {"norm_ratio": 1.5, "index.recall_at_k": 0.1}, history, now)
        rule = RULES["cusum-twin"]
        since = now - timedelta(seconds=rule.cooldown_seconds)
        starting = [c for c in reversed(history) if c.mode == "enforce" and c.action != "none"
                    and since < c.decided_at <= now]
        (outcome,) = [r for r in d.rules if r.rule_id == "cusum-twin"]
        assert (outcome.reason == "cooldown") == bool(starting)
        if starting:
            assert f"(window {starting[0].window_id})" in outcome.detail
        seen.add(bool(starting))
    assert seen == {True, False}


KEEP_FIRING = parse_policy("""\
apiVersion: drift-decider/v1
kind: Policy
metadata: {name: keep, version: "1"}
rules:
  - {id: kept, action: retrain, for: 2, keep_firing_for: 2, when: 'knn_jaccard < 0.5'}
  - {id: chart, action: recalibrate, cooldown: 2d,
     when: {metric: scores.mean_shift, cusum: {target: 0, sigma: 0.01, side: both}}}
  - {id: trend, action: refresh-index, for: 3,
     when: {metric: norm_ratio, slope: {window: 4}, op: gt, value: 0}}
""")


def policies() -> list:
    rnd = random.Random(7)
    modes = ("enforce", "enforce", "dry-run")
    return [*(parse_policy(policy_text(rnd, mode)) for mode in modes), KEEP_FIRING]


def text(decision) -> str:
    return canonical_json(decision.to_dict()) + decision.explain()


@pytest.mark.parametrize("policy", policies(), ids=lambda p: p.name + "-" + p.mode)
def test_folding_check_by_check_decides_as_folding_all_records_at_once(policy) -> None:
    """A replay folds each decided check into the state of the next; every decision must equal the one
    made on all records so far folded at once (records, explanations and ids byte for byte), also
    when a recorded check differs from what was decided there or its clock ran backwards, and a
    state branched off an older one leaves that one as it was."""
    rnd = random.Random(11)
    state, now, records, seen = PolicyState(), T0, [], []
    for step in range(80):
        # mostly a day apart; now and then a check decided before the one before it (clock skew)
        now = now + timedelta(hours=rnd.choice((24, 24, 24, 30, -20)))
        values = golden_metrics(rnd, 0.05)
        decision = evaluate(policy, values, state, now)
        assert text(decision) == text(decide(policy, values, records, now)), f"step {step}"
        seen.append(decision.action)
        # mostly the decision's own record; now and then a record that differs from what was decided
        # (other values, a time days later)
        flipped = {**values, "knn_jaccard": 1.0 - values.get("knn_jaccard", 0.5)}
        recorded = flipped if step % 7 == 3 else values
        decided_at = now + timedelta(days=3) if step % 11 == 5 else now
        record = CheckRecord(f"s{step}", now, recorded, decision.action, decision.rule_id, decided_at,
                             decision.mode)
        if step % 9 == 8:                   # a branch off this state leaves it as it was (next step checks)
            state.after(policy, CheckRecord("x", now, {}, "retrain", None, decided_at))
        records.append(record)
        state = state.after(policy, record)
        assert state.checks == len(records)
    assert len(set(seen)) >= 2                # the replay reaches more than one outcome


def test_a_state_takes_check_records_of_its_own_policy() -> None:
    with pytest.raises(InputError, match="CheckRecord"):
        PolicyState().after(POLICY, {"window_end": T0})
    state = PolicyState().after(POLICY, CheckRecord("w", T0, {"knn_jaccard": 0.5}))
    with pytest.raises(InputError, match="folded for the policy"):
        evaluate(MIXED, {}, state, T0)
    with pytest.raises(InputError, match="folded for the policy"):
        state.after(MIXED, CheckRecord("v", T0, {}))


MIXED = parse_policy("""\
apiVersion: drift-decider/v1
kind: Policy
metadata: {name: mixed, version: "1"}
rules:
  - {id: a, action: retrain, when: 'index.recall_at_k < 0.5'}
""")
