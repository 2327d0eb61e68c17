"""evaluate(): a policy, this check's metrics and the state of the checks before it in; a Decision out.

Pure and deterministic: it reads its arguments and writes into none of them, so the same inputs
always give the same decision and decision id.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime, timedelta
from typing import Mapping

from drift_decider.policy.conditions import SECONDS_PER_DAY, Frame, condition_dict
from drift_decider.policy.decision import Decision, RuleOutcome, kept_note
from drift_decider.inputs.times import parse_time
from drift_decider.policy.records import ACTION_WEIGHT, clean_metrics, encode_fields, encode_metrics, iso_time
from drift_decider.policy.model import Policy, Rule
from drift_decider.policy.state import PolicyState
from drift_decider.policy.explain_template import render


def evaluate(policy: Policy, metrics: Mapping[str, float], state: PolicyState, now: datetime, *,
             context: Mapping[str, str] | None = None) -> Decision:
    """Decide. No rule firing gives ``none``; among rules that fire, the first in precedence order
    (priority, then heavier action, then file order) wins; the others are reported as outranked.
    ``state`` holds the checks before this one, folded for ``policy`` (see PolicyState)."""
    now = parse_time(now, "now")
    current = clean_metrics(metrics, "metrics")
    ctx = {str(k): str(v) for k, v in (context or {}).items()}
    state.require(policy)
    now_s = now.timestamp()
    outcomes: list[RuleOutcome] = []
    winner: RuleOutcome | None = None
    for rule in policy.rules:
        trace: list[tuple] = []
        held = rule.when.evaluate(Frame(current, now_s / SECONDS_PER_DAY, state, trace))
        reason, detail = _not_sustained(rule, state) if held and rule.sustain > 1 else (None, None)
        kept = None
        if rule.keep_firing_for and (reason or not held):
            # still alive: kept for K checks after it last fired; holding again within them fires at once
            last = state.fired.get(rule.id)
            if last is not None and state.checks - last.index <= rule.keep_firing_for + (1 if held else 0):
                kept = last.as_record(state.checks)
                held, reason, detail = True, None, None
        if not held:
            status = "unknown" if held is None else "not-matched"
        else:
            if reason is None and rule.cooldown_seconds:
                reason, detail = _cooldown(rule, state, now_s)
            if reason is None and winner is None:
                status = "fired"
            else:
                status = "suppressed"
                if reason is None:
                    reason, detail = "outranked", f"rule {winner.rule_id} ({winner.action}) takes precedence"
        outcome = RuleOutcome(rule.id, rule.action, rule.priority, rule.severity, status,
                              [condition_dict(entry) for entry in trace], reason, detail, kept)
        outcomes.append(outcome)
        if status == "fired":
            winner = outcome
    return Decision(
        action=winner.action if winner else "none", rule_id=winner.rule_id if winner else None,
        decision_id=_decision_id(policy, state, now_s, current, ctx), policy_name=policy.name,
        policy_version=policy.version, policy_sha256=policy.sha256, mode=policy.mode, decided_at=now,
        severity=winner.severity if winner else None, explanation=_explanation(policy, winner, current),
        rules=tuple(outcomes), metrics=current, context=ctx, history_checks=state.checks,
        history_sha256=state.digest)


def _decision_id(policy: Policy, state: PolicyState, now_s: float, metrics: Mapping[str, float],
                 context: Mapping[str, str]) -> str:
    """sha256 over everything the decision depends on: policy, history, time, metrics and context."""
    return hashlib.sha256(encode_fields([policy.sha256, state.digest]) + struct.pack("<d", now_s)
                          + encode_metrics(metrics)
                          + encode_fields([f"{k}={v}" for k, v in sorted(context.items())])).hexdigest()


def _explanation(policy: Policy, winner: RuleOutcome | None, metrics: Mapping[str, float]) -> str | None:
    """The winning rule's explain template, rendered, and whether it fired by keep_firing_for."""
    if winner is None:
        return None
    template = next(rule.explain for rule in policy.rules if rule.id == winner.rule_id)
    explanation = render(template, metrics, policy.params) if template else None
    if winner.kept_firing:
        note = kept_note(winner.kept_firing)
        explanation = f"{explanation} ({note})" if explanation else note
    return explanation


def _not_sustained(rule: Rule, state: PolicyState) -> tuple[str | None, str | None]:
    """``for: N``: a rule holding now must also have held on each of the N-1 most recent checks."""
    held = 1 + min(state.streaks.get(rule.id, 0), rule.sustain - 1)
    if held < rule.sustain:
        return "not-sustained", f"held on {held} of {rule.sustain} consecutive checks"
    return None, None


def _cooldown(rule: Rule, state: PolicyState, now_s: float) -> tuple[str | None, str | None]:
    """A match must wait while an enforced check with the same or a heavier action lies inside the
    cooldown; the detail names the newest such check."""
    check = state.enforced_within(ACTION_WEIGHT[rule.action], now_s - rule.cooldown_seconds, now_s)
    if check is None:
        return None, None
    try:
        until = iso_time(check.decided_at + timedelta(seconds=rule.cooldown_seconds))
    except OverflowError:       # enforced late in year 9999: the end is past what a datetime holds
        until = "after 9999-12-31"
    return "cooldown", (f"{check.action} enforced at {iso_time(check.decided_at)} "
                        f"(window {check.window_id}); cooldown until {until}")

