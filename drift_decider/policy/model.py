"""A loaded, compiled policy: rules in the order they win, ready to evaluate."""

from __future__ import annotations

from dataclasses import dataclass, field

from drift_decider.policy.conditions import Cusum, Ewma, Node, Projected, Slope
from drift_decider.policy.records import ACTION_WEIGHT

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True, eq=False)
class Rule:
    id: str
    action: str
    when: Node
    priority: int = 0
    sustain: int = 1                  # the ``for`` of the file: consecutive checks that must hold
    cooldown_seconds: float | None = None
    keep_firing_for: int = 0          # checks a sustained match stays matched after it stops holding
    severity: str = "warning"
    explain: str | None = None
    description: str | None = None
    pos: str = ""
    order: int = 0                    # position in the file, the last tie-breaker

    def precedence(self) -> tuple[int, int, int]:
        """Sort key: higher priority first, then heavier action, then earlier in the file."""
        return (-self.priority, -ACTION_WEIGHT[self.action], self.order)

    @property
    def looks_back(self) -> bool:
        """Whether deciding reads whether the rule held on earlier checks (``for``, ``keep_firing_for``)."""
        return self.sustain > 1 or self.keep_firing_for > 0


@dataclass(frozen=True)
class NamedCondition:
    """One entry of the policy's ``conditions:`` section: where it is defined and whether a rule uses it
    (rules hold the expanded trees; lint reads these)."""

    name: str
    pos: str
    used: bool


@dataclass(frozen=True, eq=False)
class Policy:
    name: str
    version: str
    mode: str
    rules: tuple[Rule, ...]           # sorted by precedence: the first unsuppressed match wins
    params: dict[str, float] = field(default_factory=dict)
    description: str | None = None
    sha256: str = ""
    source: str = ""
    conditions: tuple[NamedCondition, ...] = ()
    # what a PolicyState keeps for this policy, derived once from the rules (see policy.state)
    charts: tuple[Ewma | Cusum, ...] = field(init=False, repr=False)     # one per distinct chart state
    trend_span: int = field(init=False, repr=False)     # earlier checks the longest trend window reads

    def __post_init__(self) -> None:
        leaves = [leaf for rule in self.rules for leaf in rule.when.leaves()]
        charts = {leaf.state_key: leaf for leaf in leaves if isinstance(leaf, (Ewma, Cusum))}
        object.__setattr__(self, "charts", tuple(charts.values()))
        object.__setattr__(self, "trend_span", max((leaf.window - 1 for leaf in leaves
                                                    if isinstance(leaf, (Slope, Projected))), default=0))

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run"

    def not_a_gate(self) -> str | None:
        """Why this policy cannot gate a promotion, or None. A gate decides once, on no history, so rules
        that fire only after earlier checks (``for``, ``keep_firing_for``, trends) would pass any candidate."""
        waiting = [rule.id for rule in self.rules if rule.looks_back]
        if self.trend_span:
            waiting.append("its trend conditions")
        if not waiting:
            return None
        return (f"a promotion gate decides once, on no history, so {', '.join(waiting)} can never fire (they need "
                f"earlier checks: `for`, `keep_firing_for` or a trend); gate with a policy written for it, such "
                f"as policies/promotion-gate.yaml (docs/policies.md, writing gates)")
