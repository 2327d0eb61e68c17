"""evaluate(): a policy, this check's metrics and the history in; a Decision out. Pure and deterministic."""

from __future__ import annotations

import hashlib
from functools import partial
from datetime import datetime, timedelta, timezone
from typing import Mapping

from drift_decider.policy.conditions import SECONDS_PER_DAY, Frame
from drift_decider.policy.decision import Decision, Detail
from drift_decider.policy.history import (ACTION_WEIGHT, CheckRecord, History, _iso, clean_metrics,
                                          encode_fields, encode_metrics, parse_time)
from drift_decider.policy.model import Policy, Rule
from drift_decider.policy.template import render


def evaluate(policy: Policy, metrics: Mapping[str, float], history: History, now: datetime, *,
             context: Mapping[str, str] | None = None) -> Decision:
    """Decide. No rule firing gives ``none``; among rules that fire, the first in precedence order
    (priority, then heavier action, then file order) wins; the others are reported as outranked."""
    if not (isinstance(now, datetime) and now.tzinfo is timezone.utc):
        now = parse_time(now, "now")
    current = clean_metrics(metrics, "metrics")
    ctx = {str(k): str(v) for k, v in (context or {}).items()}
    times, past, memo = _history_series(history)
    frame = Frame(current, now.timestamp() / SECONDS_PER_DAY, times, past, len(past), None, memo)
    verdicts: list[tuple[Rule, str, str | None, Detail]] = []
    winner: Rule | None = None
    for rule in policy.rules:
        held = rule.when.evaluate(frame)
        status, reason, detail = ("unknown" if held is None else "not-matched"), None, None
        if held:
            reason, detail = _suppression(rule, frame, history, now)
            if reason is None and winner is not None:
                reason, detail = "outranked", f"rule {winner.id} ({winner.action}) takes precedence"
            status = "suppressed" if reason else "fired"
            if status == "fired":
                winner = rule
        verdicts.append((rule, status, reason, detail))
    digest = hashlib.sha256(encode_fields([policy.sha256, history.digest(), _iso(now)]))
    digest.update(encode_metrics(current))
    digest.update(encode_fields([f"{k}={v}" for k, v in sorted(ctx.items())]))
    return Decision(
        action=winner.action if winner else "none", rule_id=winner.id if winner else None,
        decision_id=digest.hexdigest(), policy_name=policy.name, policy_version=policy.version,
        policy_sha256=policy.sha256, mode=policy.mode, decided_at=now,
        severity=winner.severity if winner else None,
        explanation=render(winner.explain, current, policy.params) if winner and winner.explain else None,
        verdicts=tuple(verdicts), frame=frame, metrics=current, context=ctx, history_checks=len(history),
        history_sha256=history.digest())


def _history_series(history: History) -> tuple[list[float], list[dict[str, float]], dict]:
    """Check times (days), metric dicts and a memo for prefix statistics, made once per History."""
    cached = history.__dict__.get("_series")
    if cached is None:
        cached = ([c._seconds[1] / SECONDS_PER_DAY for c in history.checks],
                  [c.metrics for c in history.checks], {})
        object.__setattr__(history, "_series", cached)
    return cached


def _held_at(rule: Rule, frame: Frame, index: int) -> bool:
    """Did the rule's condition hold on history check ``index``? Depends on the history alone: memoised."""
    key = (rule.when, index)
    held = frame.memo.get(key)
    if held is None:
        earlier = Frame(frame.history_metrics[index], frame.times[index], frame.times, frame.history_metrics,
                        index, None, frame.memo)
        held = frame.memo[key] = rule.when.evaluate(earlier) is True
    return held


def _cooldown_detail(check: CheckRecord, cooldown_seconds: float) -> str:
    until = check.decided_at + timedelta(seconds=cooldown_seconds)
    return (f"{check.action} enforced at {_iso(check.decided_at)} (window {check.window_id}); "
            f"cooldown until {_iso(until)}")


def _enforced_at_least(action: str, frame: Frame, history: History) -> list[tuple[int, float]]:
    """(index, decided_at in epoch seconds), newest first, of enforced checks whose action is
    ``action`` or heavier. Memoised per History; seconds keep cooldown boundaries exact."""
    key = ("enforced", action)
    found = frame.memo.get(key)
    if found is None:
        weight = ACTION_WEIGHT[action]
        checks = history.checks
        found = frame.memo[key] = [(i, checks[i]._seconds[1]) for i in range(len(checks) - 1, -1, -1)
                                   if checks[i].mode == "enforce"
                                   and ACTION_WEIGHT[checks[i].action] >= weight]
    return found


def _suppression(rule: Rule, frame: Frame, history: History, now: datetime) -> tuple[str | None, Detail]:
    """Why a rule whose condition holds now must not fire yet: not sustained, or in cooldown.

    The detail text is returned unformatted (a callable) when formatting it costs more than deciding.
    """
    if rule.sustain > 1:
        held = 1
        for index in range(frame.end - 1, max(frame.end - rule.sustain, -1), -1):
            if not _held_at(rule, frame, index):
                break
            held += 1
        if held < rule.sustain:
            return "not-sustained", f"held on {held} of {rule.sustain} consecutive checks"
    if rule.cooldown_seconds:
        now_s = now.timestamp()
        since = now_s - rule.cooldown_seconds
        for index, decided in _enforced_at_least(rule.action, frame, history):
            if since < decided <= now_s:
                return "cooldown", partial(_cooldown_detail, history.checks[index], rule.cooldown_seconds)
    return None, None
