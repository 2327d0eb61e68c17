"""The decision record: what to do, which rule said so, and the full trace of why. Plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drift_decider.policy.records import iso_time


@dataclass(frozen=True)
class RuleOutcome:
    """How one rule fared: ``fired``, ``suppressed`` (matched, held back), ``not-matched`` or ``unknown``."""

    rule_id: str
    action: str
    priority: int
    severity: str
    status: str
    conditions: list[dict[str, Any]]   # every condition evaluated: metric, op, value, threshold, outcome, text
    reason: str | None = None          # for suppressed: not-sustained | cooldown | outranked
    detail: str | None = None
    kept_firing: dict[str, Any] | None = None   # matched by keep_firing_for: the check it last held at

    def to_dict(self) -> dict[str, Any]:
        out = {"rule": self.rule_id, "action": self.action, "priority": self.priority,
               "severity": self.severity, "status": self.status, "conditions": self.conditions}
        if self.reason:
            out["reason"], out["detail"] = self.reason, self.detail
        if self.kept_firing:
            out["kept_firing"] = self.kept_firing
        return out


@dataclass(frozen=True)
class Decision:
    """The outcome of one evaluation, with every rule in order of precedence and its evaluated conditions."""

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
    metrics: dict[str, float] = field(default_factory=dict)      # the finite metric values used
    context: dict[str, str] = field(default_factory=dict)
    history_checks: int = 0
    history_sha256: str = ""

    @property
    def inputs(self) -> dict[str, Any]:
        return {"metrics": dict(sorted(self.metrics.items())), "context": dict(self.context),
                "history": {"checks": self.history_checks, "sha256": self.history_sha256}}

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run"

    @property
    def kept_firing(self) -> bool:
        """Whether the winning rule fired by ``keep_firing_for`` rather than by holding now."""
        return any(r.status == "fired" and r.kept_firing for r in self.rules)

    @property
    def suppressed(self) -> list[RuleOutcome]:
        return [r for r in self.rules if r.status == "suppressed"]

    @property
    def suppressed_reasons(self) -> set[tuple[str, str]]:
        """(rule id, reason) of every suppressed rule."""
        return {(r.rule_id, r.reason or "") for r in self.suppressed}

    @property
    def matched(self) -> list[str]:
        """Rules whose conditions held now, whether they fired or were suppressed."""
        return [r.rule_id for r in self.rules if r.status in ("fired", "suppressed")]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe decision record (what the tracking layer stores as decision.json)."""
        return {
            "decision_id": self.decision_id, "action": self.action, "rule_id": self.rule_id,
            "severity": self.severity, "mode": self.mode, "dry_run": self.dry_run,
            "decided_at": iso_time(self.decided_at), "explanation": self.explanation,
            "policy": {"name": self.policy_name, "version": self.policy_version,
                       "sha256": self.policy_sha256},
            "matched": self.matched,
            "suppressed": [{"rule": r.rule_id, "action": r.action, "reason": r.reason, "detail": r.detail,
                            **({"kept_firing": r.kept_firing} if r.kept_firing else {})}
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
                 f"Decided at: {iso_time(self.decided_at)}   decision id: {self.decision_id[:16]}",
                 f"Inputs: {len(self.metrics)} metrics, {self.history_checks} prior checks"]
        if self.explanation:
            lines.append(f"Why: {self.explanation}")
        if self.action == "none":
            lines.append("Why: no rule fired (default decision)")
        lines.append("Rules, in order of precedence:")
        for rule in self.rules:
            status = rule.status.upper()
            if rule.kept_firing:
                status += f", {kept_note(rule.kept_firing)}"
            if rule.reason:
                status += f" ({rule.reason}: {rule.detail})"
            lines.append(f"  [{status}] {rule.rule_id} -> {rule.action} (priority {rule.priority})")
            for cond in rule.conditions:
                lines.append(f"      {cond['outcome']:>7}  {cond['text']}   value={_num(cond['value'])}")
        return "\n".join(lines)


def held_rules(record: dict[str, Any]) -> str:
    """The rules a decision record says matched but were held back, and why, e.g.
    ``retrain-semantic-change (not-sustained)``; "" when none was. A `none` beside a held retrain is
    not the same news as a quiet `none`."""
    return ", ".join(f"{item['rule']} ({item['reason']})" for item in record.get("suppressed", []))


def kept_note(kept: dict[str, Any]) -> str:
    ago = kept["checks_ago"]
    return (f"kept firing: last held at window {kept['window_id']} ({kept['decided_at']}), "
            f"{ago} check{'s' if ago > 1 else ''} ago")


def _num(value: Any) -> str:
    return "n/a (missing or too little history)" if value is None else f"{value:.6g}"
