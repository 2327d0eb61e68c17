"""Backtests: what a policy would have decided over recorded checks, had it been in charge.

Each check is decided on its own metrics at its own time, with the checks before it as history.
The history holds the *replayed* decisions, counted as enforced whatever the policy's mode (the
question is what the policy would have done in charge; ``as_enforced=False`` records them in the
policy's mode, as live checks do), so cooldowns, ``for`` and ``keep_firing_for`` follow what it
would have enforced. Checks before ``since`` are taken as recorded (the history the backtest
starts from). Each decision is made with the context a live ``check`` uses (model, version, window
id, when the rows say them), so replaying a version's whole recorded history through the policy
that recorded it gives back every recorded decision id (for a dry-run policy, with
``as_enforced=False``). The replay is policy.replay's loop: each decided check is folded into the
state of the next, so a step costs the same after ten checks or fifty thousand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping

from drift_decider.errors import InputError
from drift_decider.policy.decision import Decision
from drift_decider.policy.records import REFERENCE_KEYS, CheckRecord, history_rows, iso_time
from drift_decider.policy.model import Policy
from drift_decider.policy.replay import decide_series
from drift_decider.policy.state import PolicyState


@dataclass(frozen=True)
class Recorded:
    """One recorded check and, when known, the model version it was made for and its recorded decision id."""

    check: CheckRecord
    model: str | None = None
    version: str | None = None
    decision_id: str | None = None
    run_id: str | None = None
    noise_floor: str | None = None
    not_measured: str | None = None

    def context(self) -> dict[str, str]:
        """The context a live ``check`` decides with (``api.check``): model, version, window id, the
        noise floor its metrics were judged against and the evidence it did not see."""
        ctx = {"window_id": self.check.window_id}
        for key in ("model", "version", "noise_floor", "not_measured"):
            if getattr(self, key) is not None:
                ctx[key] = getattr(self, key)
        return ctx


@dataclass(frozen=True)
class Step:
    """One replayed check: what was recorded for it and what the policy decides."""

    recorded: Recorded
    decision: Decision

    @property
    def same(self) -> bool:
        """The recorded action, and the recorded rule when the record names one."""
        check = self.recorded.check
        return check.action == self.decision.action and check.rule_id in (None, self.decision.rule_id)

    def to_dict(self) -> dict[str, Any]:
        check, decision = self.recorded.check, self.decision
        return {"window_id": check.window_id, "window_end": iso_time(check.window_end),
                "decided_at": iso_time(check.decided_at), "run_id": self.recorded.run_id,
                "recorded": {"action": check.action, "rule_id": check.rule_id, "mode": check.mode,
                             "decision_id": self.recorded.decision_id},
                "action": decision.action, "rule_id": decision.rule_id, "decision_id": decision.decision_id,
                "same": self.same, "same_decision_id": decision.decision_id == self.recorded.decision_id,
                "suppressed": sorted(f"{rule}:{reason}" for rule, reason in decision.suppressed_reasons)}


def replay(policy: Policy, recorded: Iterable[Recorded], *, history: Iterable[CheckRecord] = (),
           context: Mapping[str, str] | None = None, as_enforced: bool = True) -> Iterator[Step]:
    """Decide every check in order (oldest first), each on the history before it plus the decisions
    replayed so far; checks decided at the same time do not see each other, as live checks of windows
    that end together do not. ``history`` holds checks before the first one, as recorded. Replayed
    decisions count as enforced (the policy in charge) or, with ``as_enforced=False``, in the
    policy's mode, as a live check records them. Steps are yielded as they are decided."""
    entries = list(recorded)
    checks = ((entry.check, {**(context or {}), **entry.context()}) for entry in entries)
    state = PolicyState().after_all(policy, history)
    for entry, decided in zip(entries, decide_series(policy, checks, state, as_enforced=as_enforced)):
        yield Step(entry, decided.decision)


def recorded_from_rows(rows: Any, since: datetime | None = None
                       ) -> tuple[tuple[CheckRecord, ...], list[Recorded]]:
    """Recorded checks from JSON rows (as ``drift-decider history --json`` prints them, or as ``policy
    explain --history`` takes them), split into the history before ``since`` and the checks to replay.

    Rows must be of one model version (a check reads only its own version's history) and oldest first."""
    entries = [_recorded(row, i) for i, row in enumerate(history_rows(rows))]
    for key in ("model", "version"):
        seen = sorted({str(getattr(e, key)) for e in entries if getattr(e, key) is not None})
        if len(seen) > 1:
            raise InputError(f"history mixes checks of {key}s {', '.join(seen)}: a check reads only its own "
                             f"model version's history, so backtest one at a time "
                             f"(drift-decider history --model M --version V --json)")
    for i in range(1, len(entries)):
        if entries[i].check.decided_at < entries[i - 1].check.decided_at:
            raise InputError(f"history entry {i} ({entries[i].check.window_id!r}) was decided before entry "
                             f"{i - 1}: checks must be oldest first")
    cut = 0 if since is None else next((i for i, e in enumerate(entries) if e.check.decided_at >= since),
                                       len(entries))
    return tuple(e.check for e in entries[:cut]), entries[cut:]


def _recorded(row: Any, index: int) -> Recorded:
    check = CheckRecord.from_dict(row, index)        # checks the row; it ignores the reference keys
    return Recorded(check, **{k: (None if row[k] is None else str(row[k])) for k in REFERENCE_KEYS if k in row})


def summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts over ``Step.to_dict()`` rows: replayed and recorded actions, how many checks get the
    recorded decision back, and how many its recorded decision id."""
    replayed: dict[str, int] = {}
    recorded: dict[str, int] = {}
    same = same_id = total = 0
    for row in rows:
        total += 1
        replayed[row["action"]] = replayed.get(row["action"], 0) + 1
        recorded[row["recorded"]["action"]] = recorded.get(row["recorded"]["action"], 0) + 1
        same += row["same"]
        same_id += row["same_decision_id"]
    return {"checks": total, "actions": dict(sorted(replayed.items())),
            "recorded_actions": dict(sorted(recorded.items())), "same": same, "same_decision_id": same_id}
