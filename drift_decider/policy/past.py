"""What conditions and suppressions read from a History, derived once per History and only on demand.

A History is immutable, so everything here is a pure function of it: the time axis, one value
series per metric (shared by every leaf on that metric), prefix states of recursive trend
statistics (keyed by the parameters they depend on, so equal leaves in different rules share them),
whether a rule held on an earlier check, and the enforced actions that start cooldowns.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence

SECONDS_PER_DAY = 86400.0


class Past:
    """Derived, memoised views of the checks of one History, oldest first."""

    __slots__ = ("checks", "times", "metrics", "n", "_series", "_states", "held", "_enforced")

    def __init__(self, checks: Sequence[Any]) -> None:
        self.checks = checks
        self.times = [c._seconds[1] / SECONDS_PER_DAY for c in checks]   # decided_at, days since epoch
        self.metrics = [c.metrics for c in checks]
        self.n = len(checks)
        self._series: dict[str, list[float | None]] = {}
        self._states: dict[Hashable, list] = {}
        self.held: dict[tuple[object, int], bool] = {}     # (condition tree, check index) -> held
        self._enforced: list[tuple[int, float, int]] | None = None

    def series(self, metric: str) -> list[float | None]:
        """The metric's value at each check (None where it is missing)."""
        values = self._series.get(metric)
        if values is None:
            values = self._series[metric] = [m.get(metric) for m in self.metrics]
        return values

    def states(self, key: Hashable, metric: str, fold: Callable[[list[float | None]], list]) -> list:
        """``fold(series(metric))``: the state of a recursive statistic after each prefix, made once per key."""
        found = self._states.get(key)
        if found is None:
            found = self._states[key] = fold(self.series(metric))
        return found

    def enforced(self, weight_of: dict[str, int]) -> list[tuple[int, float, int]]:
        """(action weight, decided_at in epoch seconds, index), newest first, of the enforced checks
        that took an action; seconds keep cooldown boundaries exact."""
        if self._enforced is None:
            checks = self.checks
            self._enforced = [(weight_of[c.action], c._seconds[1], i) for i, c in
                              ((i, checks[i]) for i in range(self.n - 1, -1, -1))
                              if c.mode == "enforce" and c.action != "none"]
        return self._enforced

