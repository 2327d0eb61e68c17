"""evaluate(): a policy, this check's metrics and the history in; a Decision out. Pure and deterministic."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Mapping

from drift_decider.policy.conditions import SECONDS_PER_DAY, Frame
from drift_decider.policy.decision import Decision, RuleOutcome
from drift_decider.policy.history import ACTION_WEIGHT, History, _iso, canonical_json, clean_metrics, parse_time
from drift_decider.policy.model import Policy, Rule
from drift_decider.policy.template import render


def evaluate(policy: Policy, metrics: Mapping[str, float], history: History, now: datetime, *,
             context: Mapping[str, str] | None = None) -> Decision:
    """Decide. No rule firing gives ``none``; among rules that fire, the first in precedence order
    (priority, then heavier action, then file order) wins; the others are reported as outranked."""
    now = parse_time(now, "now")
    current = clean_metrics(metrics, "metrics")
    ctx = {str(k): str(v) for k, v in (context or {}).items()}
    times, past = _history_series(history)
    trace: list[dict[str, Any]] = []
    frame = Frame(current, now.timestamp() / SECONDS_PER_DAY, times, past, len(past), trace)
    outcomes: list[RuleOutcome] = []
    winner: Rule | None = None
    for rule in policy.rules:
        start = len(trace)
        held = rule.when.evaluate(frame)
        conditions = tuple(trace[start:])
        status, reason, detail = ("unknown" if held is None else "not-matched"), None, None
        if held:
            reason, detail = _suppression(rule, frame, history, now)
            if reason is None and winner is not None:
                reason, detail = "outranked", f"rule {winner.id} ({winner.action}) takes precedence"
            status = "suppressed" if reason else "fired"
            if status == "fired":
                winner = rule
        outcomes.append(RuleOutcome(rule.id, rule.action, rule.priority, rule.severity, status, conditions,
                                    reason, detail))
    decision_id = hashlib.sha256(canonical_json({
        "policy": policy.sha256, "metrics": current, "history": history.digest(), "context": ctx,
        "now": _iso(now)}).encode()).hexdigest()
    return Decision(
        action=winner.action if winner else "none", rule_id=winner.id if winner else None,
        decision_id=decision_id, policy_name=policy.name, policy_version=policy.version,
        policy_sha256=policy.sha256, mode=policy.mode, decided_at=now,
        severity=winner.severity if winner else None,
        explanation=render(winner.explain, current, policy.params) if winner and winner.explain else None,
        rules=tuple(outcomes),
        inputs={"metrics": dict(sorted(current.items())), "context": ctx,
                "history": {"checks": len(history), "sha256": history.digest()}})


def _history_series(history: History) -> tuple[list[float], list[dict[str, float]]]:
    """Check times (days) and metric dicts of the history, computed once per History object."""
    cached = history.__dict__.get("_series")
    if cached is None:
        cached = ([c.decided_at.timestamp() / SECONDS_PER_DAY for c in history.checks],
                  [c.metrics for c in history.checks])
        object.__setattr__(history, "_series", cached)
    return cached


def _suppression(rule: Rule, frame: Frame, history: History, now: datetime) -> tuple[str | None, str | None]:
    """Why a rule whose condition holds now must not fire yet: not sustained, or in cooldown."""
    if rule.sustain > 1:
        held = 1
        for index in range(frame.end - 1, max(frame.end - rule.sustain, -1), -1):
            earlier = Frame(frame.history_metrics[index], frame.times[index], frame.times,
                            frame.history_metrics, index, None)
            if rule.when.evaluate(earlier) is not True:
                break
            held += 1
        if held < rule.sustain:
            return "not-sustained", f"held on {held} of {rule.sustain} consecutive checks"
    if rule.cooldown_days:
        since = now - timedelta(days=rule.cooldown_days)
        weight = ACTION_WEIGHT[rule.action]
        for check in reversed(history.checks):
            if (check.mode == "enforce" and ACTION_WEIGHT[check.action] >= weight
                    and since < check.decided_at <= now):
                until = check.decided_at + timedelta(days=rule.cooldown_days)
                return "cooldown", (f"{check.action} enforced at {_iso(check.decided_at)} (window "
                                    f"{check.window_id}); cooldown until {_iso(until)}")
    return None, None
