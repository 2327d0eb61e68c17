"""Times users give (options, history files, index metadata, spool entries, check tags): one parser,
with no other dependency, so the policy layer can read times without the embedding inputs."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from drift_decider.errors import InputError


def parse_time(value: Any, what: str) -> datetime:
    """A timezone-aware UTC datetime from a datetime or an ISO 8601 string (the one parser of the times
    users give: options, history files, index metadata); naive times are taken as UTC."""
    if type(value) is datetime and value.tzinfo is timezone.utc:    # already what we want (the hot path)
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{what} {value!r} is not an ISO 8601 time (e.g. 2026-11-25T00:00:00Z)") from None
    if not isinstance(value, datetime):
        raise InputError(f"{what}: expected a time, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:       # e.g. 0001-01-01T00:00:00+05:00 is before the first UTC time a datetime holds
        raise InputError(f"{what} {value.isoformat()!r} is outside the years 1 to 9999 in UTC") from None
