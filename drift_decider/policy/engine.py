"""evaluate(): a policy, this check's metrics and the history in; a Decision out. Pure and deterministic."""

from __future__ import annotations

import hashlib
import struct
from functools import partial
from datetime import datetime, timedelta
from typing import Mapping

from drift_decider.policy.conditions import Frame
from drift_decider.policy.decision import Decision, Detail, kept_note, kept_record
from drift_decider.policy.history import (ACTION_WEIGHT, History, _iso, clean_metrics,
                                          encode_fields, encode_metrics, parse_time)
from drift_decider.policy.model import Policy, Rule
from drift_decider.policy.past import SECONDS_PER_DAY, Past
from drift_decider.policy.template import render


def evaluate(policy: Policy, metrics: Mapping[str, float], history: History, now: datetime, *,
             context: Mapping[str, str] | None = None) -> Decision:
    """Decide. No rule firing gives ``none``; among rules that fire, the first in precedence order
    (priority, then heavier action, then file order) wins; the others are reported as outranked."""
    now = parse_time(now, "now")
    current = clean_metrics(metrics, "metrics")
    ctx = {str(k): str(v) for k, v in (context or {}).items()}
    past = history.past()
    now_s = now.timestamp()
    frame = Frame(current, now_s / SECONDS_PER_DAY, past, past.n)
    verdicts: list[tuple[Rule, str, str | None, Detail]] = []
    kept: dict[str, int] = {}
    winner: Rule | None = None
    outranked = ""                    # the detail every rule behind the winner shares
    looked_back: list[tuple[object, bool]] = []     # held now, for rules that read earlier checks
    for rule in policy.rules:
        held = rule.when.evaluate(frame)
        if rule.sustain > 1 or rule.keep_firing_for:
            looked_back.append((rule.when, held is True))
        reason, detail = (_not_sustained(rule, past) if held and rule.sustain > 1 else (None, None))
        if rule.keep_firing_for and (reason or not held):
            # still alive: kept for K checks after it last fired; holding again within them fires at once
            last = _last_firing(rule, past)
            if last is not None and past.n - last <= rule.keep_firing_for + (1 if held else 0):
                kept[rule.id] = last
                held, reason, detail = True, None, None
        if not held:
            verdicts.append((rule, "unknown" if held is None else "not-matched", None, None))
            continue
        if reason is None and rule.cooldown_seconds:
            reason, detail = _cooldown(rule, past, now_s)
        if reason is None:
            if winner is None:
                winner = rule
                outranked = f"rule {rule.id} ({rule.action}) takes precedence"
                verdicts.append((rule, "fired", None, None))
                continue
            reason, detail = "outranked", outranked
        verdicts.append((rule, "suppressed", reason, detail))
    past.decided = (dict(current), now_s, looked_back)      # a copy: the Decision hands out ``current``
    explanation = render(winner.explain, current, policy.params) if winner and winner.explain else None
    if winner and winner.id in kept:
        note = kept_note(kept_record(past, kept[winner.id]))
        explanation = f"{explanation} ({note})" if explanation else note
    history_sha256 = history.digest()
    digest = hashlib.sha256(encode_fields([policy.sha256, history_sha256]) + struct.pack("<d", now_s)
                            + encode_metrics(current)
                            + encode_fields([f"{k}={v}" for k, v in sorted(ctx.items())]))
    return Decision(
        action=winner.action if winner else "none", rule_id=winner.id if winner else None,
        decision_id=digest.hexdigest(), policy_name=policy.name, policy_version=policy.version,
        policy_sha256=policy.sha256, mode=policy.mode, decided_at=now,
        severity=winner.severity if winner else None,
        explanation=explanation, verdicts=tuple(verdicts), frame=frame, metrics=current, context=ctx,
        history_checks=past.n, history_sha256=history_sha256, kept=kept)


def _held_at(rule: Rule, past: Past, index: int) -> bool:
    """Did the rule's condition hold on history check ``index``? Depends on the history alone: memoised."""
    flags = past.held(rule.when)
    held = flags[index]
    if held is None:
        earlier = Frame(past.metrics(index), past.time(index), past, index)
        held = flags[index] = rule.when.evaluate(earlier) is True
    return held


def _cooldown_detail(past: Past, weight: int, since: float, now_s: float, cooldown_seconds: float) -> str:
    """Names the newest enforced check (in history order) that keeps the rule in cooldown."""
    check = next(c for c in reversed(past.checks[:past.n]) if c.mode == "enforce" and ACTION_WEIGHT[c.action] >= weight
                 and since < c._seconds[1] <= now_s)
    try:
        until = _iso(check.decided_at + timedelta(seconds=cooldown_seconds))
    except OverflowError:       # enforced late in year 9999: the end is past what a datetime holds
        until = "after 9999-12-31"
    return (f"{check.action} enforced at {_iso(check.decided_at)} (window {check.window_id}); "
            f"cooldown until {until}")


def _not_sustained(rule: Rule, past: Past) -> tuple[str | None, Detail]:
    """``for: N``: a rule holding now must also have held on each of the N-1 most recent checks."""
    flags, held = past.held(rule.when), 1
    for index in range(past.n - 1, max(past.n - rule.sustain, -1), -1):
        known = flags[index]                # in a replay, usually carried from the decision made there
        if not (_held_at(rule, past, index) if known is None else known):
            break
        held += 1
    if held < rule.sustain:
        return "not-sustained", f"held on {held} of {rule.sustain} consecutive checks"
    return None, None


def _last_firing(rule: Rule, past: Past) -> int | None:
    """The last history check at which a rule with ``keep_firing_for: K`` was firing, or None.

    Firing at a check: the condition held there, and it held on the for - 1 checks before it or the
    rule was still alive at the check before (firing, or kept: within K checks after it last fired).
    Alive-ness is a fold over the history; it starts after the newest K + 1 consecutive checks on
    which the condition did not hold (nothing before them can keep the rule alive), so usually only
    the last few checks are evaluated. Memoised per History and rule.
    """
    if rule in past.firing:
        return past.firing[rule]
    keep, start, quiet = rule.keep_firing_for, 0, 0
    for index in range(past.n - 1, -1, -1):
        quiet = 0 if _held_at(rule, past, index) else quiet + 1
        if quiet > keep:
            start = index + quiet
            break
    last, run = None, 0
    for index in range(start, past.n):
        if _held_at(rule, past, index):
            run += 1
            if run >= rule.sustain or (last is not None and index - 1 - last <= keep):
                last = index
        else:
            run = 0
    past.firing[rule] = last
    return last


def _cooldown(rule: Rule, past: Past, now_s: float) -> tuple[str | None, Detail]:
    """A match must wait while an enforced check with the same or a heavier action lies inside the
    cooldown. The detail is returned unformatted (a callable): formatting it costs more than deciding."""
    since = now_s - rule.cooldown_seconds
    weight = ACTION_WEIGHT[rule.action]
    if past.enforced_within(weight, since, now_s):
        return "cooldown", partial(_cooldown_detail, past, weight, since, now_s, rule.cooldown_seconds)
    return None, None
