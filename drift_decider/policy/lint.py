"""Warnings about rules that load fine but cannot do what their author meant.

Sound, not complete: we only reason about conjunctions of plain threshold comparisons, so every
warning is a real problem, while some unreachable rules in complex trees go unflagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drift_decider.policy.conditions import OP_SYMBOL, All, Any_, Compare, Node
from drift_decider.policy.records import ACTION_WEIGHT
from drift_decider.policy.model import Policy, Rule


@dataclass(frozen=True)
class LintWarning:
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: warning: {self.message}"


@dataclass(frozen=True)
class Interval:
    """Values a metric may take: between lo and hi, each bound open or closed."""

    lo: float = -math.inf
    lo_closed: bool = False
    hi: float = math.inf
    hi_closed: bool = False

    @classmethod
    def of(cls, atom: Compare) -> "Interval | None":
        v = atom.value
        return {"gt": cls(lo=v), "gte": cls(lo=v, lo_closed=True), "lt": cls(hi=v),
                "lte": cls(hi=v, hi_closed=True), "eq": cls(v, True, v, True),
                }.get(atom.op)      # ne is not an interval

    def meet(self, other: "Interval") -> "Interval":
        lo, lo_c = max((self.lo, not self.lo_closed), (other.lo, not other.lo_closed))
        hi, hi_c = min((self.hi, self.hi_closed), (other.hi, other.hi_closed))
        return Interval(lo, not lo_c, hi, hi_c)

    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))

    def within(self, other: "Interval") -> bool:
        lo_ok = self.lo > other.lo or (self.lo == other.lo and (other.lo_closed or not self.lo_closed))
        hi_ok = self.hi < other.hi or (self.hi == other.hi and (other.hi_closed or not self.hi_closed))
        return lo_ok and hi_ok


def lint(policy: Policy) -> list[LintWarning]:
    """Contradictory conjunctions, rules shadowed by a higher-precedence weaker rule, unused params and
    named conditions."""
    warnings: list[LintWarning] = []
    for rule in policy.rules:
        warnings += _contradictions(rule, rule.when)
    for later_index, later in enumerate(policy.rules):
        for earlier in policy.rules[:later_index]:
            if _shadows(earlier, later):
                warnings.append(LintWarning(later.pos, (
                    f"rule {later.id!r} can never fire: whenever it matches, rule {earlier.id!r} "
                    f"({earlier.action}, priority {earlier.priority}) matches too and takes precedence")))
                break
    used = {leaf.param for rule in policy.rules for leaf in rule.when.leaves()
            if getattr(leaf, "param", None)}
    for name in sorted(set(policy.params) - used):
        warnings.append(LintWarning(policy.source, f"param {name!r} is never used"))
    for named in policy.conditions:
        if not named.used:
            warnings.append(LintWarning(named.pos, f"named condition {named.name!r} is never used by a rule"))
    return sorted(warnings, key=lambda w: _location_key(w.location))


def _location_key(location: str) -> tuple[str, int, int]:
    parts = location.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[1]), int(parts[2])
    return location, 0, 0


def _conjuncts(node: Node) -> list[Node]:
    """The nodes that must all hold for ``node`` to hold (flattening nested ``all``)."""
    if isinstance(node, All):
        return [leaf for child in node.children for leaf in _conjuncts(child)]
    return [node]


def _bounds(node: Node) -> dict[str, Interval] | None:
    """Per-metric interval implied by a conjunction of plain comparisons; None for other trees."""
    bounds: dict[str, Interval] = {}
    for part in _conjuncts(node):
        if not isinstance(part, Compare):
            return None
        interval = Interval.of(part)
        if interval is None:
            return None
        bounds[part.metric] = bounds.get(part.metric, Interval()).meet(interval)
    return bounds


def _contradictions(rule: Rule, node: Node, inside_all: bool = False, in_branch: bool = False
                    ) -> list[LintWarning]:
    """Empty intervals in each maximal conjunction (not under ``not``, where they would be tautologies).
    One under an ``any`` is a dead branch, not a rule that can never fire."""
    out: list[LintWarning] = []
    if not inside_all:
        compares = [p for p in _conjuncts(node) if isinstance(p, Compare) and Interval.of(p) is not None]
        for metric in sorted({c.metric for c in compares}):
            atoms = [c for c in compares if c.metric == metric]
            meet = Interval()
            for atom in atoms:
                meet = meet.meet(Interval.of(atom))  # type: ignore[arg-type]
            if meet.empty():
                text = " and ".join(f"{a.metric} {OP_SYMBOL[a.op]} {a.value:g}" for a in atoms)
                what = f"a branch of rule {rule.id!r} can never hold" if in_branch else \
                    f"rule {rule.id!r} can never fire"
                out.append(LintWarning(atoms[0].pos, f"{what}: {text} cannot all hold"))
    for child in getattr(node, "children", ()):
        out += _contradictions(rule, child, isinstance(node, All), in_branch or isinstance(node, Any_))
    return out


def _shadows(earlier: Rule, later: Rule) -> bool:
    """True if ``earlier`` fires whenever ``later`` would, so ``later`` never wins."""
    mine, theirs = _bounds(earlier.when), _bounds(later.when)
    if mine is None or theirs is None:
        return False
    if earlier.sustain > later.sustain:
        return False
    if later.keep_firing_for > earlier.keep_firing_for:     # later can be kept firing after earlier stops
        return False
    if earlier.cooldown_seconds and (not later.cooldown_seconds
                                     or earlier.cooldown_seconds > later.cooldown_seconds
                                     or ACTION_WEIGHT[earlier.action] < ACTION_WEIGHT[later.action]):
        return False
    return all(metric in theirs and theirs[metric].within(interval) for metric, interval in mine.items())
