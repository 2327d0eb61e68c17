"""Helpers for the policy tests: a fixed decision time and weekly histories before it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from drift_decider.policy import CheckRecord, History

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)


def weekly(values: list[dict[str, float]], actions: list[str] | None = None,
           mode: str = "enforce") -> History:
    """History of weekly checks ending one week before T0."""
    n = len(values)
    actions = actions or ["none"] * n
    return History(tuple(CheckRecord(f"w{i}", T0 - timedelta(days=7 * (n - i)), v, actions[i], None, None,
                                     mode) for i, v in enumerate(values)))
