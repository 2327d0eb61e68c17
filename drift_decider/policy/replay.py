"""Deciding a series of checks in turn, each on the checks before it: the one loop behind backtests,
``policy test``, the scenario helper and the decision benchmark.

Each decided check joins the history as the tracking layer records it (``decided_record``), so
``for``, ``keep_firing_for`` and cooldowns read the series' own decisions. Consecutive checks
decided at the same time do not see each other, as live checks of windows that end together do not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Iterator, Mapping

from drift_decider.policy.decision import Decision
from drift_decider.policy.engine import evaluate
from drift_decider.policy.records import CheckRecord
from drift_decider.policy.model import Policy
from drift_decider.policy.state import PolicyState


@dataclass(frozen=True)
class Decided:
    """One check of a series: the check, what the policy decided, and the state it decided on."""

    check: CheckRecord
    decision: Decision
    state: PolicyState


def decided_record(check: CheckRecord, decision: Decision, mode: str) -> CheckRecord:
    """The record a decided check leaves in the history: its window, time and metrics, with the
    decision's action and rule, in ``mode`` (the policy's, as a live check records it, or
    ``enforce`` for a backtest that puts the policy in charge)."""
    return replace(check, action=decision.action, rule_id=decision.rule_id, mode=mode)


def decide_series(policy: Policy, checks: Iterable[tuple[CheckRecord, Mapping[str, str]]],
                  state: PolicyState = PolicyState(), *, as_enforced: bool = False) -> Iterator[Decided]:
    """Decide each (check, context) in order on ``state`` plus the checks decided before it; yields
    each as it is decided, so a caller may stop early. Decided checks are recorded in the policy's
    mode, or as enforced with ``as_enforced``."""
    waiting: list[CheckRecord] = []          # decided, joining the history once time moves on
    for check, context in checks:
        if waiting and waiting[-1].decided_at != check.decided_at:
            state, waiting = state.after_all(policy, waiting), []
        decision = evaluate(policy, check.metrics, state, check.decided_at, context=context)
        yield Decided(check, decision, state)
        waiting.append(decided_record(check, decision, "enforce" if as_enforced else decision.mode))
