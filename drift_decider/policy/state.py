"""What a decision needs from the past, as one immutable value folded check by check.

A PolicyState holds, for one policy, what its rules read from earlier checks: the running sha256 of
the checks (part of every decision id), the EWMA and CUSUM chart states, how many checks in a row
each rule that looks back held (``for``) and where it last fired (``keep_firing_for``), the
enforced actions that start cooldowns, and the newest checks that trend windows read. ``after``
folds one more check in and returns a new state; nothing is ever changed in place, so a state can
be shared, kept and decided on any number of times. Folding costs the same per check however long
the history, so a live check folds its history once and a replay folds as it goes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, NamedTuple

from drift_decider.errors import InputError
from drift_decider.policy.conditions import SECONDS_PER_DAY, Cusum, Ewma, Frame
from drift_decider.policy.records import ACTION_WEIGHT, CheckRecord, encode_record, iso_time
from drift_decider.policy.model import Policy

Window = tuple[list[float], list[float], float, float]     # times, values, sum of times, sum of values


class Enforced(NamedTuple):
    """An enforced check (newest first, as a linked list): what cooldowns look for."""

    seconds: float                # decided_at, epoch seconds
    weight: int                   # its action's weight
    record: CheckRecord
    latest: float                 # the latest ``seconds`` of this and every older entry
    older: "Enforced | None"


class Fired(NamedTuple):
    """The last check a ``keep_firing_for`` rule fired at."""

    index: int                    # its position in the history
    window_id: str
    decided_at: datetime

    def as_record(self, checks: int) -> dict[str, Any]:
        """How a decision record states it, ``checks`` checks into the history."""
        return {"window_id": self.window_id, "decided_at": iso_time(self.decided_at),
                "checks_ago": checks - self.index}


@dataclass(frozen=True)
class PolicyState:
    """The checks folded in so far, as a policy's rules read them. ``PolicyState()`` is no history."""

    checks: int = 0                                   # how many checks were folded in
    digest: str = hashlib.sha256().hexdigest()        # sha256 of their canonical encoding
    policy_sha256: str | None = None                  # the policy they were folded for (None: no check yet)
    recent: tuple[tuple[float, Mapping[str, float]], ...] = ()    # (days, metrics) of the newest checks
    charts: Mapping[tuple, tuple] = field(default_factory=dict)   # chart state_key -> state
    streaks: Mapping[str, int] = field(default_factory=dict)      # rule id -> checks in a row it held
    fired: Mapping[str, Fired] = field(default_factory=dict)      # rule id -> last check it fired at
    enforced: Enforced | None = None
    # where the digest continues: the sha256 object fed every check (copied, never updated in
    # place) and the newest check's metric names
    hasher: Any = field(default_factory=hashlib.sha256, repr=False, compare=False)
    names: tuple[str, ...] | None = field(default=None, repr=False)

    def after(self, policy: Policy, record: CheckRecord) -> "PolicyState":
        """This state with one newer check folded in."""
        if not isinstance(record, CheckRecord):
            raise InputError(f"PolicyState.after takes a CheckRecord, got {type(record).__name__}")
        self.require(policy)
        days = record.decided_at.timestamp() / SECONDS_PER_DAY
        streaks, fired = self._rules_after(policy, record, Frame(record.metrics, days, self))
        hasher = self.hasher.copy()
        encoded, names = encode_record(record, self.names)
        hasher.update(encoded)
        span = policy.trend_span
        return PolicyState(
            checks=self.checks + 1, digest=hasher.hexdigest(), policy_sha256=policy.sha256,
            recent=(self.recent + ((days, record.metrics),))[-span:] if span else (),
            charts={leaf.state_key: leaf.step(self.chart(leaf), record.metrics) for leaf in policy.charts},
            streaks=streaks, fired=fired, enforced=self._enforced_after(record), hasher=hasher, names=names)

    def after_all(self, policy: Policy, records: Iterable[CheckRecord]) -> "PolicyState":
        """This state with newer checks folded in, oldest first."""
        state = self
        for record in records:
            state = state.after(policy, record)
        return state

    def require(self, policy: Policy) -> None:
        """InputError unless this state was folded for ``policy`` (or holds no check)."""
        if self.policy_sha256 not in (None, policy.sha256):
            raise InputError(f"this state was folded for the policy of sha256 {self.policy_sha256[:12]}, "
                             f"not for {policy.name} v{policy.version} ({policy.sha256[:12]}): fold its "
                             f"checks for this policy")

    def chart(self, leaf: Ewma | Cusum) -> tuple:
        """The state of a chart after the checks folded in."""
        return self.charts.get(leaf.state_key, leaf.start)

    def window(self, metric: str, n: int) -> Window | None:
        """The newest ``n`` checks as a trend reads them: times (days), values, and the sums of both
        added left to right from 0.0. None if there are fewer or one lacks the metric."""
        if n > len(self.recent):
            return None
        times, values = [], []
        sum_t = sum_v = 0.0
        for t, metrics in self.recent[len(self.recent) - n:]:
            value = metrics.get(metric)
            if value is None:
                return None
            times.append(t)
            values.append(value)
            sum_t += t
            sum_v += value
        return times, values, sum_t, sum_v

    def enforced_within(self, weight: int, since: float, until: float) -> CheckRecord | None:
        """The newest enforced check (in history order) whose action weighs at least ``weight`` and
        that was decided in ``(since, until]`` (epoch seconds), or None."""
        entry = self.enforced
        while entry is not None and entry.latest > since:     # older entries all lie before ``since``
            if since < entry.seconds <= until and entry.weight >= weight:
                return entry.record
            entry = entry.older
        return None

    def _rules_after(self, policy: Policy, record: CheckRecord, frame: Frame
                     ) -> tuple[dict[str, int], dict[str, Fired]]:
        """Streaks and last firings with ``record`` folded in. A rule fires at a check where its
        condition held, and held on the ``for`` - 1 checks before it or the rule was still alive at the
        check before (firing, or kept: within ``keep_firing_for`` checks after it last fired)."""
        streaks, fired = dict(self.streaks), dict(self.fired)
        for rule in policy.rules:
            if not rule.looks_back:
                continue
            held = rule.when.evaluate(frame) is True
            streaks[rule.id] = min(streaks.get(rule.id, 0) + 1, rule.sustain) if held else 0
            last = fired.get(rule.id)
            if rule.keep_firing_for and held and (streaks[rule.id] >= rule.sustain or (
                    last is not None and self.checks - 1 - last.index <= rule.keep_firing_for)):
                fired[rule.id] = Fired(self.checks, record.window_id, record.decided_at)
        return streaks, fired

    def _enforced_after(self, record: CheckRecord) -> Enforced | None:
        if record.mode != "enforce" or record.action == "none":
            return self.enforced
        seconds = record.decided_at.timestamp()
        latest = seconds if self.enforced is None else max(seconds, self.enforced.latest)
        return Enforced(seconds, ACTION_WEIGHT[record.action], record, latest, self.enforced)
