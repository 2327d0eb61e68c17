"""Backtests: what a policy would have decided over recorded checks, had it been in charge.

Each check is decided on its own metrics at its own time, with the checks before it as history.
The history holds the *replayed* decisions, not the recorded ones: cooldowns, ``for`` and
``keep_firing_for`` then follow what this policy would have enforced. Checks before ``since``
are taken as recorded (the history the backtest starts from). The history grows by
``History.append``, so a step costs the same whether the series is ten checks long or ten thousand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping

from drift_decider.errors import InputError
from drift_decider.policy.decision import Decision
from drift_decider.policy.engine import evaluate
from drift_decider.policy.history import CheckRecord, History, _iso
from drift_decider.policy.model import Policy

# keys of `drift-decider history --json` rows that say where a check lives in MLflow, not what it was
_REFERENCE_KEYS = ("version", "decision_id", "run_id")


@dataclass(frozen=True)
class Step:
    """One replayed check: what was recorded for it and what the policy decides."""

    recorded: CheckRecord
    decision: Decision

    def to_dict(self) -> dict[str, Any]:
        return {"window_id": self.recorded.window_id, "window_end": _iso(self.recorded.window_end),
                "decided_at": _iso(self.recorded.decided_at), "recorded_action": self.recorded.action,
                "action": self.decision.action, "rule_id": self.decision.rule_id,
                "decision_id": self.decision.decision_id,
                "suppressed": sorted(f"{rule}:{reason}" for rule, reason in self.decision.suppressed_reasons)}


def replay(policy: Policy, checks: Iterable[CheckRecord], *, history: History | None = None,
           context: Mapping[str, str] | None = None) -> Iterator[Step]:
    """Decide every check in order (oldest first), each on the history before it plus the decisions
    replayed so far. ``history`` holds checks before the first one, as recorded. Steps are yielded
    as they are decided: a decision keeps what its trace is rebuilt from, so a long backtest whose
    caller keeps only what it reports holds one decision at a time."""
    current = History() if history is None else history
    for check in checks:
        decision = evaluate(policy, check.metrics, current, check.decided_at,
                            context={**(context or {}), "window_id": check.window_id})
        yield Step(check, decision)
        current = current.append(check.with_decision(decision.action, decision.rule_id, decision.mode))


def checks_from_rows(rows: Any, since: datetime | None = None) -> tuple[History, list[CheckRecord]]:
    """Check records from JSON rows (as ``policy explain --history`` takes them, or as ``drift-decider
    history --json`` prints them), split into the recorded history before ``since`` and the checks to
    replay. Rows must be oldest first: a backtest out of order would decide on a future it had not seen."""
    if isinstance(rows, Mapping) and "checks" in rows:
        rows = rows["checks"]
    if not isinstance(rows, list):
        raise InputError("history must be a JSON list of check records")
    records = [CheckRecord.from_dict(_without_references(row), i) for i, row in enumerate(rows)]
    for i in range(1, len(records)):
        if records[i].decided_at < records[i - 1].decided_at:
            raise InputError(f"history entry {i} ({records[i].window_id!r}) was decided before entry {i - 1}: "
                             f"checks must be oldest first")
    cut = 0 if since is None else next((i for i, r in enumerate(records) if r.decided_at >= since), len(records))
    return History(tuple(records[:cut])), records[cut:]


def _without_references(row: Any) -> Any:
    return {k: v for k, v in row.items() if k not in _REFERENCE_KEYS} if isinstance(row, Mapping) else row


def summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of replayed and recorded actions over ``Step.to_dict()`` rows, and how many agree."""
    replayed: dict[str, int] = {}
    recorded: dict[str, int] = {}
    agree = total = 0
    for row in rows:
        total += 1
        replayed[row["action"]] = replayed.get(row["action"], 0) + 1
        recorded[row["recorded_action"]] = recorded.get(row["recorded_action"], 0) + 1
        agree += row["action"] == row["recorded_action"]
    return {"checks": total, "actions": dict(sorted(replayed.items())),
            "recorded_actions": dict(sorted(recorded.items())), "agree": agree}
