"""A loaded, compiled policy: rules in the order they win, ready to evaluate."""

from __future__ import annotations

from dataclasses import dataclass, field

from drift_decider.policy.conditions import Node
from drift_decider.policy.history import ACTION_WEIGHT

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

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run"
