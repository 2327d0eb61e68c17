"""Condition trees and how they evaluate, with three-valued (Kleene) logic.

A leaf whose metric is missing or has too little history is *unknown* (None), never an exception.
``not`` keeps unknown unknown, so ``not (auc > 0.7)`` does not fire when the AUC was not measured;
a rule fires only when its tree is True. Trend leaves read what earlier checks left (a PolicyState)
through a Frame, so a tree evaluates the same way on the current check and on each check as it is
folded into the state (which is how ``for: N`` knows the earlier checks).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    from drift_decider.policy.state import PolicyState

OPS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
    "eq": operator.eq, "ne": operator.ne,
}
OP_SYMBOL = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "ne": "!="}
SECONDS_PER_DAY = 86400.0       # trends read time in days since the epoch


class Frame:
    """One check as conditions see it: its metric values, its time, and the state of the checks before it."""

    __slots__ = ("metrics", "time", "state", "trace")

    def __init__(self, metrics: Mapping[str, float], time: float, state: "PolicyState",
                 trace: list | None = None) -> None:
        self.metrics = metrics
        self.time = time                          # days since the epoch
        self.state = state                        # what the checks before this one left
        self.trace = trace                        # list to append leaf results to, or None

    def slope(self, metric: str, window: int) -> tuple[float | None, float] | None:
        """(least-squares slope per day over the last ``window`` checks, this one included, this check's
        value); None when one of them lacks the metric or the history is too short."""
        current = self.metrics.get(metric)
        if current is None:
            return None
        earlier = self.state.window(metric, window - 1)
        if earlier is None:
            return None
        return slope_per_day(*earlier, self.time, current), current


def _record(frame: Frame, leaf: "Leaf", value: float | None, threshold: float | None,
            outcome: bool | None, detail: dict[str, Any] | None = None) -> bool | None:
    if frame.trace is not None:
        frame.trace.append((leaf, value, threshold, outcome, detail))
    return outcome


def condition_dict(entry: tuple) -> dict[str, Any]:
    """The JSON form of one trace entry, built only when a record or an explanation is asked for."""
    leaf, value, threshold, outcome, detail = entry
    out = {"kind": leaf.kind, "metric": leaf.metric, "op": leaf.op_label(), "value": value,
           "threshold": threshold, "outcome": outcome_label(outcome), "text": leaf.describe()}
    if detail:
        out["detail"] = detail
    return out


def outcome_label(outcome: bool | None) -> str:
    return "unknown" if outcome is None else ("true" if outcome else "false")


class Node:
    """A node of a condition tree."""

    def evaluate(self, frame: Frame) -> bool | None:
        raise NotImplementedError

    def leaves(self) -> list["Leaf"]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class All(Node):
    children: tuple[Node, ...]

    def evaluate(self, frame: Frame) -> bool | None:
        result: bool | None = True
        for child in self.children:
            outcome = child.evaluate(frame)
            if outcome is False:
                if frame.trace is None:
                    return False
                result = False
            elif outcome is None and result is True:
                result = None
        return result

    def leaves(self) -> list["Leaf"]:
        return [leaf for child in self.children for leaf in child.leaves()]

    def describe(self) -> str:
        return "(" + " and ".join(c.describe() for c in self.children) + ")"


@dataclass(frozen=True, eq=False)
class Any_(Node):
    children: tuple[Node, ...]

    def evaluate(self, frame: Frame) -> bool | None:
        result: bool | None = False
        for child in self.children:
            outcome = child.evaluate(frame)
            if outcome is True:
                if frame.trace is None:
                    return True
                result = True
            elif outcome is None and result is False:
                result = None
        return result

    def leaves(self) -> list["Leaf"]:
        return [leaf for child in self.children for leaf in child.leaves()]

    def describe(self) -> str:
        return "(" + " or ".join(c.describe() for c in self.children) + ")"


@dataclass(frozen=True, eq=False)
class Not(Node):
    child: Node

    def evaluate(self, frame: Frame) -> bool | None:
        outcome = self.child.evaluate(frame)
        return None if outcome is None else not outcome

    def leaves(self) -> list["Leaf"]:
        return self.child.leaves()

    def describe(self) -> str:
        return f"not {self.child.describe()}"


@dataclass(frozen=True, eq=False)
class Leaf(Node):
    """A condition on one metric. ``pos`` is where it was written."""

    metric: str
    pos: str

    kind = "leaf"

    def leaves(self) -> list["Leaf"]:
        return [self]

    def op_label(self) -> str | None:
        return None


@dataclass(frozen=True, eq=False)
class Compare(Leaf):
    """``metric op value`` on the current check."""

    op: str
    value: float
    param: str | None = None

    kind = "threshold"

    def evaluate(self, frame: Frame) -> bool | None:
        current = frame.metrics.get(self.metric)
        outcome = None if current is None else OPS[self.op](current, self.value)
        if frame.trace is not None:
            frame.trace.append((self, current, self.value, outcome, None))
        return outcome

    def op_label(self) -> str:
        return self.op

    def describe(self) -> str:
        return f"{self.metric} {OP_SYMBOL[self.op]} {_threshold_text(self.value, self.param)}"


@dataclass(frozen=True, eq=False)
class Missing(Leaf):
    """True when the metric is absent (or present, with ``missing: false``): lets gates fail closed."""

    missing: bool = True

    kind = "missing"

    def evaluate(self, frame: Frame) -> bool | None:
        current = frame.metrics.get(self.metric)
        return _record(frame, self, current, None, (current is None) == self.missing)

    def describe(self) -> str:
        return f"{self.metric} is {'missing' if self.missing else 'present'}"


def slope_per_day(times: Sequence[float], values: Sequence[float], sum_t: float, sum_v: float,
                  time: float, value: float) -> float | None:
    """Least-squares slope (units per day) of earlier (time in days, value) points plus one last
    point; None if the times coincide. ``sum_t``/``sum_v`` are the earlier points' sums, added left to
    right from 0.0 (as PolicyState.window adds them): every sum runs in one fixed order, so the
    slope is the same float whichever way the points were gathered."""
    n = len(times) + 1
    mean_t, mean_v = (sum_t + time) / n, (sum_v + value) / n
    sxx = sxy = 0.0
    for t, v in zip(times, values):
        dt = t - mean_t
        sxx += dt * dt
        sxy += dt * (v - mean_v)
    dt = time - mean_t
    sxx += dt * dt
    sxy += dt * (value - mean_v)
    return None if sxx <= 1e-18 else sxy / sxx


@dataclass(frozen=True, eq=False)
class Slope(Leaf):
    """Least-squares slope per day over the last ``window`` checks compared with a value."""

    window: int
    op: str
    value: float
    param: str | None = None

    kind = "slope"

    def evaluate(self, frame: Frame) -> bool | None:
        found = frame.slope(self.metric, self.window)
        slope = None if found is None else found[0]
        outcome = None if slope is None else OPS[self.op](slope, self.value)
        return _record(frame, self, slope, self.value, outcome)

    def op_label(self) -> str:
        return self.op

    def describe(self) -> str:
        return (f"slope({self.metric}, last {self.window} checks)/day {OP_SYMBOL[self.op]} "
                f"{_threshold_text(self.value, self.param)}")


@dataclass(frozen=True, eq=False)
class Projected(Leaf):
    """Early warning: extrapolating the recent slope, ``metric op value`` holds within ``within_days``.

    True as well when the condition already holds now (the crossing is then zero days away).
    """

    window: int
    within_days: float
    op: str
    value: float
    param: str | None = None

    kind = "projected"

    def evaluate(self, frame: Frame) -> bool | None:
        found = frame.slope(self.metric, self.window)
        if found is None or found[0] is None:
            return _record(frame, self, None, self.value, None)
        slope, current = found
        projected = current + slope * self.within_days
        outcome = OPS[self.op](current, self.value) or OPS[self.op](projected, self.value)
        detail = None
        if frame.trace is not None:
            days = (self.value - current) / slope if slope != 0.0 else -1.0
            detail = {"current": current, "slope_per_day": slope, "within_days": self.within_days,
                      "days_to_threshold": days if days >= 0 else None}
        return _record(frame, self, projected, self.value, outcome, detail)

    def op_label(self) -> str:
        return self.op

    def describe(self) -> str:
        return (f"{self.metric} projected {self.within_days:g}d ahead (slope of last {self.window} checks) "
                f"{OP_SYMBOL[self.op]} {_threshold_text(self.value, self.param)}")


@dataclass(frozen=True, eq=False)
class Ewma(Leaf):
    """EWMA control chart (Roberts 1959) with stated in-control target and sigma; True on alarm.

    z_t = lam*x_t + (1-lam)*z_{t-1}, z_0 = target; alarm when |z_t - target| exceeds
    L*sigma*sqrt(lam/(2-lam)*(1-(1-lam)^(2t))) on the stated side.
    """

    lam: float
    target: float
    sigma: float
    limit: float
    side: str

    kind = "ewma"

    @property
    def state_key(self) -> tuple:
        """What the chart's state depends on (not L or side), so equal charts share it; hex keeps -0.0
        and 0.0 apart, which start charts whose zero values differ in sign."""
        return ("ewma", self.metric, self.lam, self.target.hex())

    @property
    def start(self) -> tuple[float, int]:
        """(z, count) before any check."""
        return self.target, 0

    def step(self, state: tuple[float, int], metrics: Mapping[str, float]) -> tuple[float, int]:
        """(z, count) after one more check; a check lacking the metric leaves it as it was."""
        x = metrics.get(self.metric)
        if x is None:
            return state
        z, count = state
        return self.lam * x + (1.0 - self.lam) * z, count + 1

    def evaluate(self, frame: Frame) -> bool | None:
        if self.metric not in frame.metrics:
            return _record(frame, self, None, None, None)
        z, t = self.step(frame.state.chart(self), frame.metrics)
        width = self.limit * self.sigma * math.sqrt(
            self.lam / (2.0 - self.lam) * (1.0 - (1.0 - self.lam) ** (2 * t)))
        upper, lower = self.target + width, self.target - width
        outcome = _side_alarm(self.side, z > upper, z < lower)
        threshold = upper if self.side == "upper" else lower if self.side == "lower" else width
        detail = {"lower": lower, "upper": upper, "checks": t} if frame.trace is not None else None
        return _record(frame, self, z, threshold, outcome, detail)

    def describe(self) -> str:
        return (f"ewma({self.metric}, lambda={self.lam:g}, target={self.target:g}, sigma={self.sigma:g}, "
                f"L={self.limit:g}) alarm on {self.side} side")


@dataclass(frozen=True, eq=False)
class Cusum(Leaf):
    """Tabular CUSUM (Page 1954) in sigma units; True on alarm.

    S_t = max(0, S_{t-1} + (x_t - target)/sigma - k) (and the mirror for the lower side); alarm when S_t > h.
    """

    target: float
    sigma: float
    k: float
    h: float
    side: str

    kind = "cusum"

    @property
    def state_key(self) -> tuple:
        """What the sums depend on (not h or side), so equal charts share them."""
        return ("cusum", self.metric, self.target.hex(), self.sigma, self.k)

    @property
    def start(self) -> tuple[float, float, int]:
        """(upper sum, lower sum, count) before any check."""
        return 0.0, 0.0, 0

    def step(self, state: tuple[float, float, int], metrics: Mapping[str, float]) -> tuple[float, float, int]:
        """The sums after one more check; a check lacking the metric leaves them as they were."""
        x = metrics.get(self.metric)
        if x is None:
            return state
        hi, lo, count = state
        u = (x - self.target) / self.sigma
        return max(0.0, hi + u - self.k), max(0.0, lo - u - self.k), count + 1

    def evaluate(self, frame: Frame) -> bool | None:
        if self.metric not in frame.metrics:
            return _record(frame, self, None, None, None)
        hi, lo, count = self.step(frame.state.chart(self), frame.metrics)
        outcome = _side_alarm(self.side, hi > self.h, lo > self.h)
        stat = hi if self.side == "upper" else lo if self.side == "lower" else max(hi, lo)
        detail = {"upper_sum": hi, "lower_sum": lo, "checks": count} if frame.trace is not None else None
        return _record(frame, self, stat, self.h, outcome, detail)

    def describe(self) -> str:
        return (f"cusum({self.metric}, target={self.target:g}, sigma={self.sigma:g}, k={self.k:g}, "
                f"h={self.h:g}) alarm on {self.side} side")


def _side_alarm(side: str, above: bool, below: bool) -> bool:
    return above if side == "upper" else below if side == "lower" else (above or below)


def _threshold_text(value: float, param: str | None) -> str:
    return f"${param} ({value:g})" if param else f"{value:g}"
