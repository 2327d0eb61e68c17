"""The history a decision looks back on: records of earlier checks, and their canonical encoding.

Records are plain data handed in by the caller (the tracking layer reads them from MLflow runs) and
folded into a PolicyState (policy.state), so evaluation has no hidden inputs. The encoding here is
what decision ids hash: it must stay byte for byte what it is.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

from drift_decider.errors import InputError
from drift_decider.inputs.times import parse_time

ACTIONS = ("none", "refresh-index", "recalibrate", "retrain")   # lightest to heaviest
# keys of `drift-decider history --json` rows that say where a check lives in MLflow and what it was
# decided against, not what it was: a check record read from such a row ignores them (a backtest
# reads them, see policy.backtest); and keys its decision implies (the rules it held back)
REFERENCE_KEYS = ("model", "version", "decision_id", "run_id", "noise_floor", "not_measured")
DERIVED_KEYS = ("held",)
ACTION_WEIGHT = {name: rank for rank, name in enumerate(ACTIONS)}
MODES = ("enforce", "dry-run")


def iso_time(moment: datetime | None) -> str | None:
    """How records print times: ISO-8601 with a ``Z``."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def clean_metrics(raw: Any, what: str) -> dict[str, float]:
    """Metric values as floats; non-finite values are kept out (they count as missing data)."""
    if not isinstance(raw, Mapping):
        raise InputError(f"{what}: expected a mapping of metric name to number, got {type(raw).__name__}")
    if set(map(type, raw.values())) == {float} and set(map(type, raw)) == {str}:
        total = sum(raw.values())       # the usual case, checked at C speed: finite floats by name
        if total - total == 0.0:        # finite (a sum with an inf or nan in it is not)
            return dict(raw)
    out: dict[str, float] = {}
    for name, value in raw.items():
        if not isinstance(name, str):
            raise InputError(f"{what}: metric names must be strings, got {name!r}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{what}: metric {name!r} must be a number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:       # an integer past float64's range: a metric is never that
            raise InputError(f"{what}: metric {name!r} is too large for a number ({str(value)[:20]}...)") from None
        if math.isfinite(value):
            out[name] = value
    return out


@dataclass(frozen=True)
class CheckRecord:
    """One earlier check: its window, metric values, and the action decided (and in which mode)."""

    window_id: str
    window_end: datetime
    metrics: dict[str, float]
    action: str = "none"
    rule_id: str | None = None
    decided_at: datetime | None = None
    mode: str = "enforce"

    def __post_init__(self) -> None:
        if self.action not in ACTION_WEIGHT:
            raise InputError(f"history check {self.window_id!r}: unknown action {self.action!r} "
                             f"(expected one of {', '.join(ACTIONS)})")
        if self.mode not in MODES:
            raise InputError(f"history check {self.window_id!r}: unknown mode {self.mode!r}")
        object.__setattr__(self, "window_end",
                           parse_time(self.window_end, f"check {self.window_id!r} window_end"))
        decided = self.window_end if self.decided_at is None else self.decided_at
        object.__setattr__(self, "decided_at", parse_time(decided, f"check {self.window_id!r} decided_at"))
        object.__setattr__(self, "metrics", clean_metrics(self.metrics, f"check {self.window_id!r}"))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], index: int = 0) -> "CheckRecord":
        if not isinstance(raw, Mapping):
            raise InputError(f"history entry {index}: expected a mapping, got {type(raw).__name__}")
        known = {"window_id", "window_end", "metrics", "action", "rule_id", "decided_at", "mode", *REFERENCE_KEYS,
                 *DERIVED_KEYS}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"history entry {index}: unknown keys {unknown}")
        if "window_end" not in raw:
            raise InputError(f"history entry {index}: missing 'window_end'")
        return cls(window_id=str(raw.get("window_id", index)), window_end=raw["window_end"],
                   metrics=raw.get("metrics") or {}, action=raw.get("action", "none"),
                   rule_id=raw.get("rule_id"), decided_at=raw.get("decided_at"),
                   # a null mode reads as enforce, as history_from_runs reads a run without the tag
                   mode="enforce" if raw.get("mode") is None else raw["mode"])

    def to_dict(self) -> dict[str, Any]:
        return {"window_id": self.window_id, "window_end": iso_time(self.window_end),
                "metrics": dict(sorted(self.metrics.items())), "action": self.action,
                "rule_id": self.rule_id, "decided_at": iso_time(self.decided_at), "mode": self.mode}


def records_from_dicts(rows: Iterable[Mapping[str, Any]]) -> tuple[CheckRecord, ...]:
    """Check records from JSON rows, oldest first (what ``policy explain --history`` reads)."""
    if isinstance(rows, (str, bytes, Mapping)):
        raise InputError("history must be a list of check records")
    return tuple(CheckRecord.from_dict(row, i) for i, row in enumerate(rows))


def history_rows(raw: Any, what: str = "history") -> list:
    """The check rows of a history file: a JSON list, or an object with a ``checks`` list (what
    ``policy explain --history`` and ``policy backtest`` read)."""
    if isinstance(raw, Mapping) and "checks" in raw:
        raw = raw["checks"]
    if not isinstance(raw, list):
        raise InputError(f"{what} must be a JSON list of check records")
    return raw


_NEW_NAMES, _SAME_NAMES = b"\x00", b"\x01"


def encode_record(record: CheckRecord, names_before: tuple[str, ...] | None) -> tuple[bytes, tuple[str, ...]]:
    """A record's canonical bytes, and its sorted metric names: its length-prefixed fields and times,
    then its metric names (marker 0 and the names) or marker 1 when they are the names of the record
    before (``names_before``), then its values. Checks of one deployment report the same metrics, so
    names are hashed once rather than once per check; the encoding stays unambiguous because the
    names fix the values' length."""
    names = tuple(sorted(record.metrics))
    fields = (encode_fields([record.window_id, record.action, record.rule_id or "", record.mode])
              + struct.pack("<2d", record.window_end.timestamp(), record.decided_at.timestamp()))
    head = _SAME_NAMES if names == names_before else _NEW_NAMES + _encode_names(names)
    return fields + head + _encode_values(record.metrics, names), names


def encode_fields(fields: list[Any]) -> bytes:
    """Length-prefixed UTF-8 strings: unambiguous, so distinct inputs cannot collide by concatenation."""
    parts = [str(f).encode() for f in fields]
    return struct.pack(f"<I{len(parts)}I", len(parts), *map(len, parts)) + b"".join(parts)


def encode_metrics(metrics: Mapping[str, float]) -> bytes:
    """Sorted names (as a length-prefixed JSON list) and their exact float64 values."""
    names = tuple(sorted(metrics))
    return _encode_names(names) + _encode_values(metrics, names)


def _encode_names(names: tuple[str, ...]) -> bytes:
    return encode_fields([canonical_json(list(names))])


def _encode_values(metrics: Mapping[str, float], names: tuple[str, ...]) -> bytes:
    return struct.pack(f"<{len(names)}d", *map(metrics.__getitem__, names))


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII, no NaN: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
