"""What conditions and suppressions read from a History, derived once per History and only on demand.

A History is immutable, so everything here is a pure function of it: prefix states of recursive
trend statistics (keyed by the parameters they depend on, so equal charts in different rules share
them), trend windows with their sums, whether a rule held on an earlier check (``for``) and when a
``keep_firing_for`` rule last fired, and when enforced actions started cooldowns. Nothing is
derived up front: a decision that needs no trend and no cooldown touches no check. Nothing here
refers back to the History or to frames, so a Past is freed with its History (no reference cycles).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any, Callable, Hashable, Mapping, Sequence

SECONDS_PER_DAY = 86400.0
Window = tuple[list[float], list[float], float, float]     # times, values, sum of times, sum of values


class Past:
    """Memoised views of the checks of one History, oldest first."""

    __slots__ = ("checks", "n", "_metrics", "_states", "_windows", "held", "firing", "_enforced")

    def __init__(self, checks: Sequence[Any]) -> None:
        self.checks = checks
        self.n = len(checks)
        self._metrics: list[Mapping[str, float]] | None = None
        self._states: dict[Hashable, list] = {}
        self._windows: dict[tuple[str, int, int], Window | None] = {}
        self.held: dict[object, list[bool | None]] = {}    # condition tree -> held at each check (None: not yet known)
        self.firing: dict[object, int | None] = {}          # rule -> last check it fired at (keep_firing_for)
        self._enforced: list[tuple[float, int]] | None = None

    def time(self, index: int) -> float:
        """decided_at of check ``index`` in days since the epoch (the time axis of trends)."""
        return self.checks[index]._seconds[1] / SECONDS_PER_DAY

    def metrics(self, index: int) -> Mapping[str, float]:
        return self.checks[index].metrics

    def states(self, key: Hashable, fold: Callable[[Sequence[Mapping[str, float]]], list]) -> list:
        """``fold(metric dicts)``: the state of a recursive statistic after each prefix, once per key."""
        found = self._states.get(key)
        if found is None:
            if self._metrics is None:
                self._metrics = [c.metrics for c in self.checks]
            found = self._states[key] = fold(self._metrics)
        return found

    def window(self, metric: str, n: int, end: int) -> Window | None:
        """The ``n`` checks before check ``end`` as a trend reads them: times (days), values, and the sums
        of both added left to right from 0.0. None if the history is too short or one lacks the metric."""
        key = (metric, n, end)
        if key in self._windows:
            return self._windows[key]
        found: Window | None = None
        if n <= end:
            times, values = [], []
            sum_t = sum_v = 0.0
            for check in self.checks[end - n:end]:
                value = check.metrics.get(metric)
                if value is None:
                    break
                t = check._seconds[1] / SECONDS_PER_DAY
                times.append(t)
                values.append(value)
                sum_t += t
                sum_v += value
            else:
                found = (times, values, sum_t, sum_v)
        self._windows[key] = found
        return found

    def enforced_within(self, weight: int, since: float, until: float, weight_of: Mapping[str, int]) -> bool:
        """Whether an enforced check whose action weighs at least ``weight`` was decided in
        ``(since, until]`` (epoch seconds, exact at cooldown boundaries)."""
        if self._enforced is None:     # (time, weight) of the enforced actions, sorted once per History
            self._enforced = sorted([(c._seconds[1], weight_of[c.action]) for c in self.checks
                                     if c.mode == "enforce" and c.action != "none"])
        enforced = self._enforced
        i = bisect_right(enforced, (since, math.inf))
        while i < len(enforced) and enforced[i][0] <= until:     # the few checks inside one cooldown
            if enforced[i][1] >= weight:
                return True
            i += 1
        return False
