"""The history a decision looks back on: previous checks, their metrics and what was decided.

History is plain data handed in by the caller (the tracking layer builds it from MLflow runs), so
evaluation has no hidden state. Records are oldest first.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from drift_decider.errors import InputError
from drift_decider.policy.past import Past

ACTIONS = ("none", "refresh-index", "recalibrate", "retrain")   # lightest to heaviest
# keys of `drift-decider history --json` rows that say where a check lives in MLflow and what it was
# decided against, not what it was: a check record read from such a row ignores them (a backtest
# reads them, see policy.backtest); and keys its decision implies (the rules it held back)
REFERENCE_KEYS = ("model", "version", "decision_id", "run_id", "noise_floor", "not_measured")
DERIVED_KEYS = ("held",)
ACTION_WEIGHT = {name: rank for rank, name in enumerate(ACTIONS)}
MODES = ("enforce", "dry-run")


def parse_time(value: Any, what: str) -> datetime:
    """A timezone-aware UTC datetime from a datetime or ISO-8601 string; naive times are taken as UTC."""
    if type(value) is datetime and value.tzinfo is timezone.utc:    # already what we want (the hot path)
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{what}: {value!r} is not an ISO-8601 time") from None
    if not isinstance(value, datetime):
        raise InputError(f"{what}: expected a time, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


_FLOAT, _STR = {float}, {str}
_NEW_NAMES, _SAME_NAMES = b"\x00", b"\x01"     # History.digest: names follow / names as the check before


def clean_metrics(raw: Any, what: str) -> dict[str, float]:
    """Metric values as floats; non-finite values are kept out (they count as missing data)."""
    if type(raw) is not dict and not isinstance(raw, Mapping):     # the ABC check is slow: dicts first
        raise InputError(f"{what}: expected a mapping of metric name to number, got {type(raw).__name__}")
    if _FLOAT <= set(map(type, raw.values())) <= _FLOAT and set(map(type, raw)) <= _STR:
        total = sum(raw.values())       # the common case at C speed: only finite floats by name
        if total - total == 0.0:        # finite (a sum with an inf or nan in it is not)
            return dict(raw)
    out: dict[str, float] = {}
    for name, value in raw.items():
        if type(value) is float and type(name) is str:     # the common case, checked cheaply
            if value - value == 0.0:                        # finite (inf - inf and nan - nan are nan)
                out[name] = value
            continue
        if not isinstance(name, str):
            raise InputError(f"{what}: metric names must be strings, got {name!r}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{what}: metric {name!r} must be a number, got {type(value).__name__}")
        value = float(value)
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
        self._check_decision()
        object.__setattr__(self, "window_end",
                           parse_time(self.window_end, f"check {self.window_id!r} window_end"))
        decided = self.window_end if self.decided_at is None else self.decided_at
        object.__setattr__(self, "decided_at", parse_time(decided, f"check {self.window_id!r} decided_at"))
        object.__setattr__(self, "metrics", clean_metrics(self.metrics, f"check {self.window_id!r}"))
        # derived once per record: the time axis and the history digest read them on every evaluation
        seconds = (self.window_end.timestamp(), self.decided_at.timestamp())
        object.__setattr__(self, "_seconds", seconds)
        # the record's canonical encoding in three parts: fields and times, metric names, values
        names, head, values = _metrics_layout(tuple(self.metrics))
        object.__setattr__(self, "_encoded", (self._fields_part(), head,
                                              values.pack(*map(self.metrics.__getitem__, names))))

    def with_decision(self, action: str, rule_id: str | None, mode: str) -> "CheckRecord":
        """This check once decided: the same window, times and metrics, with the action taken. Only the
        decision is checked and encoded anew (a backtest appends one such record per check)."""
        record = object.__new__(type(self))
        record.__dict__.update(self.__dict__, action=action, rule_id=rule_id, mode=mode)     # metrics shared: read-only
        record._check_decision()
        object.__setattr__(record, "_encoded", (record._fields_part(), *self._encoded[1:]))
        return record

    def _check_decision(self) -> None:
        if self.action not in ACTION_WEIGHT:
            raise InputError(f"history check {self.window_id!r}: unknown action {self.action!r} "
                             f"(expected one of {', '.join(ACTIONS)})")
        if self.mode not in MODES:
            raise InputError(f"history check {self.window_id!r}: unknown mode {self.mode!r}")

    def _fields_part(self) -> bytes:
        return (encode_fields([self.window_id, self.action, self.rule_id or "", self.mode])
                + struct.pack("<2d", *self._seconds))

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
        return {"window_id": self.window_id, "window_end": _iso(self.window_end),
                "metrics": dict(sorted(self.metrics.items())), "action": self.action,
                "rule_id": self.rule_id, "decided_at": _iso(self.decided_at), "mode": self.mode}


def history_rows(raw: Any, what: str = "history") -> list:
    """The check rows of a history file: a JSON list, or an object with a ``checks`` list (what
    ``policy explain --history`` and ``policy backtest`` read)."""
    if isinstance(raw, Mapping) and "checks" in raw:
        raw = raw["checks"]
    if not isinstance(raw, list):
        raise InputError(f"{what} must be a JSON list of check records")
    return raw


class History:
    """Previous checks, oldest first. Immutable: what is derived from it is computed once (see past()).

    A History made by ``append`` shares one growing list of checks with the History it extends, each
    reading its first ``len`` entries, so a replay appends in O(1); only the newest History of a list
    may grow it (one appended to an older one copies). ``checks`` builds the tuple on first use.
    """

    __slots__ = ("_list", "_n", "_checks", "_past", "_hashed", "_digest")

    def __init__(self, checks: Iterable[CheckRecord] = ()) -> None:
        self._list: list[CheckRecord] = list(checks)
        self._n = len(self._list)
        self._checks: tuple[CheckRecord, ...] | None = None
        self._past: Past | None = None
        self._hashed: tuple[Any, bytes | None] | None = None
        self._digest: str | None = None

    @classmethod
    def from_dicts(cls, rows: Iterable[Mapping[str, Any]]) -> "History":
        if isinstance(rows, (str, bytes, Mapping)):
            raise InputError("history must be a list of check records")
        return cls(CheckRecord.from_dict(row, i) for i, row in enumerate(rows))

    @property
    def checks(self) -> tuple[CheckRecord, ...]:
        if self._checks is None:
            self._checks = tuple(self._list[:self._n])
        return self._checks

    def to_dicts(self) -> list[dict[str, Any]]:
        return [check.to_dict() for check in self._list[:self._n]]

    def append(self, check: CheckRecord) -> "History":
        """This history followed by one newer check. What was derived from this history carries over
        (its digest's hash state, trend states, verdicts on earlier checks, enforced times, and which
        conditions held at the last decision made on it, if the new check records that decision), so
        replaying a series check by check (``policy test``, backtests) does each step's history work
        once rather than again for every later decision."""
        if not isinstance(check, CheckRecord):
            raise InputError(f"History.append takes a CheckRecord, got {type(check).__name__}")
        with _APPEND_LOCK:              # two appends to one History: one grows the list, the other copies
            checks = self._list
            if len(checks) == self._n:
                checks.append(check)
            else:
                checks = checks[:self._n] + [check]
        longer = History.__new__(History)
        longer._list, longer._n, longer._checks, longer._digest = checks, self._n + 1, None, None
        hasher, names = self._hash_state()
        longer._hashed = _hash_checks(hasher.copy(), names, (check,))
        longer._past = self.past().extended(checks, longer._n)
        return longer

    def past(self) -> Past:
        """The derived views conditions and suppressions read (trend windows and states, earlier
        verdicts, enforced times; see policy.past), made once per History."""
        if self._past is None:
            self._past = Past(self._list, self._n, ACTION_WEIGHT)
        return self._past

    def digest(self) -> str:
        """sha256 over a canonical encoding of every check: part of every decision id (see _hash_checks)."""
        if self._digest is None:
            self._digest = self._hash_state()[0].hexdigest()
        return self._digest

    def _hash_state(self) -> tuple[Any, bytes | None]:
        """The sha256 object fed with every check, and the last check's metric names (what append continues)."""
        if self._hashed is None:
            self._hashed = _hash_checks(hashlib.sha256(), None, self._list[:self._n])
        return self._hashed

    def __len__(self) -> int:
        return self._n

    def __eq__(self, other: object) -> bool:
        return self.checks == other.checks if isinstance(other, History) else NotImplemented

    def __getstate__(self) -> tuple[CheckRecord, ...]:
        """Only the checks: what was derived is derived again (a hash object cannot be pickled)."""
        return self.checks

    def __setstate__(self, checks: tuple[CheckRecord, ...]) -> None:
        self.__init__(checks)

    __hash__ = None     # type: ignore[assignment]  # records hold metric dicts, so hashing failed before too

    def __repr__(self) -> str:
        return f"History({self._n} checks)"


_APPEND_LOCK = threading.Lock()


def _hash_checks(hasher: Any, names: bytes | None, checks: Iterable[CheckRecord]) -> tuple[Any, bytes | None]:
    """Feed ``hasher`` each check: its length-prefixed fields and times, then its metric names (marker
    0 and the names) or marker 1 when they are the names of the check before (``names``), then its
    values. Checks of one deployment report the same metrics, so the names are hashed once rather
    than once per check (a third of the bytes); the encoding stays unambiguous because the names fix
    the values' length. Returns the hasher and the last check's names."""
    parts = []
    for fields, head, values in [c._encoded for c in checks]:
        parts += (fields, _SAME_NAMES if head == names else _NEW_NAMES + head, values)
        names = head
    hasher.update(b"".join(parts))
    return hasher, names


def encode_fields(fields: list[Any]) -> bytes:
    """Length-prefixed UTF-8 strings: unambiguous, so distinct inputs cannot collide by concatenation."""
    parts = [str(f).encode() for f in fields]
    return _lengths(len(parts)).pack(len(parts), *map(len, parts)) + b"".join(parts)


@lru_cache(maxsize=64)
def _lengths(count: int) -> struct.Struct:
    """The packer of a field count and its lengths (three are packed per decision)."""
    return struct.Struct(f"<I{count}I")


def encode_metrics(metrics: Mapping[str, float]) -> bytes:
    """Sorted names (as a length-prefixed JSON list) and their exact float64 values."""
    names, head, values = _metrics_layout(tuple(metrics))
    return head + values.pack(*map(metrics.__getitem__, names))


@lru_cache(maxsize=256)
def _metrics_layout(keys: tuple[str, ...]) -> tuple[tuple[str, ...], bytes, struct.Struct]:
    """Sorted names, their encoding and the packer of their values, per key order seen (checks of one
    deployment report the same metrics in the same order)."""
    names = tuple(sorted(keys))
    return names, encode_fields([canonical_json(list(names))]), struct.Struct(f"<{len(names)}d")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII, no NaN: one text per value (reusing one encoder is much faster)."""
    return _CANONICAL.encode(value)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
