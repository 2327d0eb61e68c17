"""What conditions and suppressions read from a History, derived once and only on demand.

A History is immutable, so everything here is a pure function of its checks: prefix states of
recursive trend statistics (keyed by the parameters they depend on, so equal charts in different
rules share them), trend windows with their sums, whether a rule held on an earlier check (``for``)
and when a ``keep_firing_for`` rule last fired, and when enforced actions started cooldowns. Nothing
is derived up front: a decision that needs no trend and no cooldown touches no check.

Most of it depends on a prefix of the checks only. That part lives in a Memo which a History made by
``History.append`` (the same checks plus a newer one) takes over, so replaying a series check by
check derives each check's part once instead of once per later decision. Nothing here refers back
to the History or to frames, so a Past is freed with its History (no reference cycles).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right, insort
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

SECONDS_PER_DAY = 86400.0
_ENFORCED_LOCK = threading.Lock()     # guards growing an enforced-actions list that Pasts share
Window = tuple[list[float], list[float], float, float]     # times, values, sum of times, sum of values
Fold = Callable[[list, Iterable[Mapping[str, float]]], None]


class Memo:
    """What depends on a prefix of the checks only, shared along a chain of appended histories.

    Every entry is keyed or indexed so that a history reads only the checks it has, and only the
    newest history of the chain (``tip`` checks long) may hand the memo on: a history appended to an
    older one would disagree with the newer checks already derived, so it starts a memo of its own.
    Lists grow in place, so growing them (and claiming the tip) takes the lock: histories of one chain
    may be evaluated from several threads.
    """

    __slots__ = ("states", "held", "tip", "lock")

    def __init__(self, tip: int) -> None:
        self.states: dict[Hashable, list] = {}                       # state after each prefix
        self.held: dict[object, list[bool | None]] = {}    # condition tree -> held at each check (None: not yet known)
        self.tip = tip
        self.lock = threading.Lock()

    def flags(self, tree: object, n: int) -> list[bool | None]:
        """``tree``'s verdict list, at least ``n`` long (unknown: None); the caller holds the lock."""
        flags = self.held.setdefault(tree, [])
        if len(flags) < n:
            flags += [None] * (n - len(flags))
        return flags

    def __getstate__(self) -> tuple:
        """A decision keeps its Past (its trace is rebuilt from it): pickling one needs the memo, not its lock."""
        return self.states, self.held, self.tip

    def __setstate__(self, state: tuple) -> None:
        self.states, self.held, self.tip = state
        self.lock = threading.Lock()


class Past:
    """Memoised views of the checks of one History, oldest first."""

    __slots__ = ("checks", "n", "_memo", "_weight_of", "_windows", "firing", "_enforced", "_enforced_n", "decided")

    def __init__(self, checks: Sequence[Any], n: int, weight_of: Mapping[str, int], memo: Memo | None = None) -> None:
        self.checks = checks                # the first n are this History's (the list may be a longer chain's)
        self.n = n
        self._memo = Memo(n) if memo is None else memo     # only extended() hands one over, having claimed it
        self._weight_of = weight_of                          # action -> weight, for cooldowns
        # trend windows are shared by the rules of a decision; a replay's next decision reads windows
        # ending later, so they stay with this History rather than pile up in the memo
        self._windows: dict[tuple[str, int, int], Window | None] = {}
        self.firing: dict[object, int | None] = {}          # rule -> last check it fired at (keep_firing_for)
        # (time, weight) of the enforced actions, sorted by time: the first _enforced_n of a list that
        # a replay shares along its chain, as the checks are (appended in time order, it only grows)
        self._enforced: list[tuple[float, int]] | None = None
        self._enforced_n = 0
        # the last decision made on this history: its metrics, time (epoch seconds) and which
        # condition trees held then, for the trees that ``for`` and ``keep_firing_for`` read back
        self.decided: tuple[Mapping[str, float], float, list[tuple[object, bool]]] | None = None

    def extended(self, checks: Sequence[Any], n: int) -> "Past":
        """The Past of the first ``n`` of ``checks``: this Past's checks followed by newer ones."""
        memo = self._memo
        with memo.lock:
            shared = memo.tip == self.n     # the newest of its chain: the longer Past takes the memo on
            if shared:
                memo.tip = n
        longer = Past(checks, n, self._weight_of, memo if shared else None)
        if self.decided is not None and n == self.n + 1:
            with longer._memo.lock:
                self._carry_decided(longer)
        if self._enforced is not None:
            longer._enforced, longer._enforced_n = self._enforced, self._enforced_n
            for item in self._enforced_of(checks[self.n:n]):
                longer._add_enforced(item)
        return longer

    def _add_enforced(self, item: tuple[float, int]) -> None:
        """Add one enforced action: appended to the shared list when this Past holds all of it and the
        action is the latest (a replay's usual step), else into a copy of this Past's part."""
        with _ENFORCED_LOCK:
            enforced, n = self._enforced, self._enforced_n
            if len(enforced) == n and (not n or enforced[-1] <= item):
                enforced.append(item)
            else:
                enforced = enforced[:n]
                insort(enforced, item)
            self._enforced, self._enforced_n = enforced, n + 1

    def _carry_decided(self, longer: "Past") -> None:
        """If the new check is the last decision's, as a replay records it, what held then holds at it."""
        metrics, seconds, held = self.decided
        check = longer.checks[self.n]
        if check._seconds[1] != seconds or check.metrics != metrics:
            return
        n, memo = self.n, longer._memo
        for tree, flag in held:
            flags = memo.flags(tree, n)
            if len(flags) == n:             # the usual replay step: the list ends at the new check
                flags.append(flag)
            else:
                flags[n] = flag

    def time(self, index: int) -> float:
        """decided_at of check ``index`` in days since the epoch (the time axis of trends)."""
        return self.checks[index]._seconds[1] / SECONDS_PER_DAY

    def metrics(self, index: int) -> Mapping[str, float]:
        return self.checks[index].metrics

    def held(self, tree: object) -> list[bool | None]:
        """Whether ``tree`` held at each check (None: not evaluated yet), for the caller to fill in."""
        flags = self._memo.held.get(tree)
        if flags is None or len(flags) < self.n:
            with self._memo.lock:
                flags = self._memo.flags(tree, self.n)
        return flags

    def states(self, key: Hashable, fold: Fold) -> list:
        """The state of a recursive statistic after each prefix of the checks (at least ``n + 1`` of
        them), once per key: ``fold(states, metric dicts)`` appends the state after each further check,
        starting with the initial state when ``states`` is empty."""
        found = self._memo.states.get(key)
        if found is None or len(found) <= self.n:
            with self._memo.lock:
                found = self._memo.states.setdefault(key, [])
                if len(found) <= self.n:
                    fold(found, [c.metrics for c in self.checks[max(len(found) - 1, 0):self.n]])
        return found

    def window(self, metric: str, n: int, end: int) -> Window | None:
        """The ``n`` checks before check ``end`` as a trend reads them: times (days), values, and the sums
        of both added left to right from 0.0. None if the history is too short or one lacks the metric."""
        key = (metric, n, end)
        windows = self._windows
        if key in windows:
            return windows[key]
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
        windows[key] = found
        return found

    def enforced_within(self, weight: int, since: float, until: float) -> bool:
        """Whether an enforced check whose action weighs at least ``weight`` was decided in
        ``(since, until]`` (epoch seconds, exact at cooldown boundaries)."""
        if self._enforced is None:     # sorted once per History (and carried along by extended)
            found = sorted(self._enforced_of(self.checks[:self.n]))
            self._enforced_n = len(found)      # first: a thread that sees the list must see its count
            self._enforced = found
        enforced, count = self._enforced, self._enforced_n
        i = bisect_right(enforced, (since, math.inf), 0, count)
        while i < count and enforced[i][0] <= until:     # the few checks inside one cooldown
            if enforced[i][1] >= weight:
                return True
            i += 1
        return False

    def _enforced_of(self, checks: Iterable[Any]) -> list[tuple[float, int]]:
        weight_of = self._weight_of
        return [(c._seconds[1], weight_of[c.action]) for c in checks if c.mode == "enforce" and c.action != "none"]
