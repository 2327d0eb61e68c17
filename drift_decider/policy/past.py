"""Transitional: schema.py reads SECONDS_PER_DAY here until it imports it from policy.conditions
(issue 14, point 1; delete this file with that one-line change)."""

from drift_decider.policy.conditions import SECONDS_PER_DAY

__all__ = ["SECONDS_PER_DAY"]
