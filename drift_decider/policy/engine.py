"""evaluate(): a policy, this check's metrics and the history in; a Decision out. Pure and deterministic."""

from __future__ import annotations

import hashlib
from functools import partial
from datetime import datetime, timedelta, timezone
from typing import Mapping

from drift_decider.policy.conditions import Frame
from drift_decider.policy.decision import Decision, Detail
from drift_decider.policy.history import (ACTION_WEIGHT, History, _iso, clean_metrics,
                                          encode_fields, encode_metrics, parse_time)
from drift_decider.policy.model import Policy, Rule
from drift_decider.policy.past import SECONDS_PER_DAY, Past, any_within
from drift_decider.policy.template import render


def evaluate(policy: Policy, metrics: Mapping[str, float], history: History, now: datetime, *,
             context: Mapping[str, str] | None = None) -> Decision:
    """Decide. No rule firing gives ``none``; among rules that fire, the first in precedence order
    (priority, then heavier action, then file order) wins; the others are reported as outranked."""
    if not (isinstance(now, datetime) and now.tzinfo is timezone.utc):
        now = parse_time(now, "now")
    current = clean_metrics(metrics, "metrics")
    ctx = {str(k): str(v) for k, v in (context or {}).items()}
    past = history.past()
    now_s = now.timestamp()
    frame = Frame(current, now_s / SECONDS_PER_DAY, past, past.n)
    verdicts: list[tuple[Rule, str, str | None, Detail]] = []
    winner: Rule | None = None
    outranked = ""                    # the detail every rule behind the winner shares
    for rule in policy.rules:
        held = rule.when.evaluate(frame)
        if not held:
            verdicts.append((rule, "unknown" if held is None else "not-matched", None, None))
            continue
        reason, detail = _suppression(rule, frame, now_s) if rule.holds_back else (None, None)
        if reason is None:
            if winner is None:
                winner = rule
                outranked = f"rule {rule.id} ({rule.action}) takes precedence"
                verdicts.append((rule, "fired", None, None))
                continue
            reason, detail = "outranked", outranked
        verdicts.append((rule, "suppressed", reason, detail))
    history_sha256 = history.digest()
    digest = hashlib.sha256(encode_fields([policy.sha256, history_sha256, _iso(now)]) + encode_metrics(current)
                            + encode_fields([f"{k}={v}" for k, v in sorted(ctx.items())]))
    return Decision(
        action=winner.action if winner else "none", rule_id=winner.id if winner else None,
        decision_id=digest.hexdigest(), policy_name=policy.name, policy_version=policy.version,
        policy_sha256=policy.sha256, mode=policy.mode, decided_at=now,
        severity=winner.severity if winner else None,
        explanation=render(winner.explain, current, policy.params) if winner and winner.explain else None,
        verdicts=tuple(verdicts), frame=frame, metrics=current, context=ctx, history_checks=past.n,
        history_sha256=history_sha256)


def _held_at(rule: Rule, past: Past, index: int) -> bool:
    """Did the rule's condition hold on history check ``index``? Depends on the history alone: memoised."""
    key = (rule.when, index)
    held = past.held.get(key)
    if held is None:
        earlier = Frame(past.metrics(index), past.time(index), past, index)
        held = past.held[key] = rule.when.evaluate(earlier) is True
    return held


def _cooldown_detail(past: Past, weight: int, since: float, now_s: float, cooldown_seconds: float) -> str:
    """Names the newest enforced check (in history order) that keeps the rule in cooldown."""
    check = next(c for c in reversed(past.checks) if c.mode == "enforce" and ACTION_WEIGHT[c.action] >= weight
                 and since < c._seconds[1] <= now_s)
    until = check.decided_at + timedelta(seconds=cooldown_seconds)
    return (f"{check.action} enforced at {_iso(check.decided_at)} (window {check.window_id}); "
            f"cooldown until {_iso(until)}")


def _suppression(rule: Rule, frame: Frame, now_s: float) -> tuple[str | None, Detail]:
    """Why a rule whose condition holds now must not fire yet: not sustained, or in cooldown.

    The detail text is returned unformatted (a callable) when formatting it costs more than deciding.
    """
    past = frame.past
    if rule.sustain > 1:
        held = 1
        for index in range(frame.end - 1, max(frame.end - rule.sustain, -1), -1):
            if not _held_at(rule, past, index):
                break
            held += 1
        if held < rule.sustain:
            return "not-sustained", f"held on {held} of {rule.sustain} consecutive checks"
    if rule.cooldown_seconds:
        since = now_s - rule.cooldown_seconds
        weight = ACTION_WEIGHT[rule.action]
        if any_within(past.enforced_times(weight, ACTION_WEIGHT), since, now_s):
            return "cooldown", partial(_cooldown_detail, past, weight, since, now_s, rule.cooldown_seconds)
    return None, None
