"""The decision record: what to do, which rule said so, and the full trace of why."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drift_decider.policy.history import _iso


@dataclass(frozen=True)
class RuleOutcome:
    """How one rule fared: ``fired``, ``suppressed`` (matched but held back), ``not-matched`` or ``unknown``."""

    rule_id: str
    action: str
    priority: int
    severity: str
    status: str
    conditions: tuple[dict[str, Any], ...]
    reason: str | None = None          # for suppressed: not-sustained | cooldown | outranked
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"rule": self.rule_id, "action": self.action, "priority": self.priority,
               "severity": self.severity, "status": self.status, "conditions": list(self.conditions)}
        if self.reason:
            out["reason"], out["detail"] = self.reason, self.detail
        return out


@dataclass(frozen=True)
class Decision:
    action: str
    rule_id: str | None
    decision_id: str
    policy_name: str
    policy_version: str
    policy_sha256: str
    mode: str
    decided_at: datetime
    severity: str | None
    explanation: str | None
    rules: tuple[RuleOutcome, ...]
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run"

    @property
    def suppressed(self) -> list[RuleOutcome]:
        return [r for r in self.rules if r.status == "suppressed"]

    @property
    def matched(self) -> list[str]:
        """Rules whose conditions held now, whether they fired or were suppressed."""
        return [r.rule_id for r in self.rules if r.status in ("fired", "suppressed")]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe decision record (what the tracking layer stores as decision.json)."""
        return {
            "decision_id": self.decision_id, "action": self.action, "rule_id": self.rule_id,
            "severity": self.severity, "mode": self.mode, "dry_run": self.dry_run,
            "decided_at": _iso(self.decided_at), "explanation": self.explanation,
            "policy": {"name": self.policy_name, "version": self.policy_version, "sha256": self.policy_sha256},
            "matched": self.matched,
            "suppressed": [{"rule": r.rule_id, "action": r.action, "reason": r.reason, "detail": r.detail}
                           for r in self.suppressed],
            "conditions": [dict(c, rule=r.rule_id) for r in self.rules for c in r.conditions],
            "rules": [r.to_dict() for r in self.rules],
            "inputs": self.inputs,
        }

    def explain(self) -> str:
        """A readable trace: the decision, then every rule in order of precedence with its conditions."""
        head = f"Decision: {self.action}"
        if self.rule_id:
            head += f" (rule {self.rule_id}, severity {self.severity})"
        if self.dry_run:
            head += "  [DRY-RUN: recorded, not to be acted on]"
        lines = [head,
                 f"Policy: {self.policy_name} v{self.policy_version} (sha256 {self.policy_sha256[:12]})",
                 f"Decided at: {_iso(self.decided_at)}   decision id: {self.decision_id[:16]}",
                 f"Inputs: {len(self.inputs.get('metrics', {}))} metrics, "
                 f"{self.inputs.get('history', {}).get('checks', 0)} prior checks"]
        if self.explanation:
            lines.append(f"Why: {self.explanation}")
        if self.action == "none":
            lines.append("Why: no rule fired (default decision)")
        lines.append("Rules, in order of precedence:")
        for rule in self.rules:
            status = rule.status.upper()
            if rule.reason:
                status += f" ({rule.reason}: {rule.detail})"
            lines.append(f"  [{status}] {rule.rule_id} -> {rule.action} (priority {rule.priority})")
            for cond in rule.conditions:
                lines.append(f"      {cond['outcome']:>7}  {cond['text']}   value={_num(cond['value'])}")
        return "\n".join(lines)


def _num(value: Any) -> str:
    return "n/a (missing or too little history)" if value is None else f"{value:.6g}"
