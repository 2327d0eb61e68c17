"""Helpers for the policy tests: a fixed decision time, weekly histories before it, and deciding on them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from drift_decider.policy import CheckRecord, Decision, Policy, PolicyState, evaluate

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)


def weekly(values: list[dict[str, float]], actions: list[str] | None = None,
           mode: str = "enforce") -> tuple[CheckRecord, ...]:
    """Weekly checks ending one week before T0."""
    n = len(values)
    actions = actions or ["none"] * n
    return tuple(CheckRecord(f"w{i}", T0 - timedelta(days=7 * (n - i)), v, actions[i], None, None, mode)
                 for i, v in enumerate(values))


def decide(policy: Policy, metrics: Any, history: Iterable[CheckRecord] = (), now: Any = T0,
           **kwargs: Any) -> Decision:
    """evaluate() on the state of ``history`` (check records, oldest first) folded for ``policy``."""
    return evaluate(policy, metrics, PolicyState().after_all(policy, history), now, **kwargs)
