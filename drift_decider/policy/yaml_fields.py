"""Typed, located access to a parsed YAML mapping: the one place unknown keys and bad types are caught."""

from __future__ import annotations

import difflib
import re
from typing import Any, Iterable

from drift_decider.errors import PolicyError
from drift_decider.measure.metric_names import metric_keys
from drift_decider.policy.located_yaml import Located, LocatedList

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d|w)\s*$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
# ten years: longer than any cooldown, projection or test interval means anything, and short enough
# that adding it to a decision time stays inside what datetime can hold
MAX_DURATION_DAYS = 3650


def suggest(word: str, choices: Iterable[str]) -> str:
    """A " (did you mean 'x'?)" hint for a misspelt name, or "" when nothing is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_metric(name: Any) -> str | None:
    """What to say of a name that is not a metric key a policy may read (with a did-you-mean), or None.
    A misspelt metric would read as missing at every check and fire no rule, silently."""
    keys = metric_keys()
    return None if name in keys else f"unknown metric {name!r}{suggest(str(name), keys)}"


def type_name(value: Any) -> str:
    return {dict: "mapping", Located: "mapping", list: "list", LocatedList: "list", str: "string",
            bool: "boolean", int: "integer", float: "number", type(None): "null"}.get(type(value),
                                                                                    type(value).__name__)


def shift(pos: str, columns: int) -> str:
    """Move a ``file:line:col`` location right by ``columns`` (for offsets inside a one-line string)."""
    head, line, col = pos.rsplit(":", 2)
    return f"{head}:{line}:{int(col) + columns}"


class Fields:
    """A mapping node being read: checks keys against an allowed set, reads typed values with locations."""

    def __init__(self, node: Any, where: str, what: str, allowed: Iterable[str],
                 required: Iterable[str] = ()) -> None:
        if not isinstance(node, Located):
            raise PolicyError(f"{what} must be a mapping, got {type_name(node)}", where)
        self.node, self.what = node, what
        allowed = set(allowed)
        for key in node:
            if key not in allowed:
                raise PolicyError(f"unknown key {key!r} in {what}{suggest(key, allowed)}", node.key_pos[key])
        for key in required:
            if key not in node:
                raise PolicyError(f"{what} is missing required key {key!r}", node.pos)

    @property
    def pos(self) -> str:
        return self.node.pos

    def has(self, key: str) -> bool:
        return key in self.node

    def at(self, key: str) -> str:
        """Location of the value of ``key`` (or of the mapping when the key is absent)."""
        return self.node.value_pos.get(key, self.node.pos)

    def raw(self, key: str, default: Any = None) -> Any:
        return self.node.get(key, default)

    def fail(self, key: str, message: str) -> PolicyError:
        return PolicyError(f"{self.what}: {key}: {message}", self.at(key))

    def string(self, key: str, default: str | None = None, *, pattern: str | None = None) -> str | None:
        if key not in self.node:
            return default
        value = self.node[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, got {type_name(value)}")
        if pattern and not re.fullmatch(pattern, value):
            raise self.fail(key, f"{value!r} does not match {pattern}")
        return value

    def choice(self, key: str, options: Iterable[str], default: str | None = None) -> str | None:
        options = tuple(options)
        value = self.string(key, default)
        if value is not None and value not in options:
            raise self.fail(key, f"{value!r} is not one of {', '.join(options)}{suggest(value, options)}")
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.node.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {type_name(value)}")
        if not low <= value <= high:
            raise self.fail(key, f"{value} is outside [{low}, {high}]")
        return value

    def duration_seconds(self, key: str) -> float | None:
        """A duration such as ``30m``, ``12h``, ``7d``, ``2w`` in seconds (exact for whole numbers), at
        most MAX_DURATION_DAYS. None when the key is absent.
        """
        if key not in self.node:
            return None
        value = self.node[key]
        match = _DURATION.match(value) if isinstance(value, str) and len(value) <= 40 else None
        if match is None:
            shown = repr(value)
            raise self.fail(key, f"expected a duration like 12h, 7d or 2w, got {shown[:40]}"
                                 + ("..." if len(shown) > 40 else ""))
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if seconds > MAX_DURATION_DAYS * 86400:
            raise self.fail(key, f"{value.strip()} is longer than the limit of {MAX_DURATION_DAYS}d")
        return seconds

    def sub(self, key: str, what: str, allowed: Iterable[str], required: Iterable[str] = ()) -> "Fields":
        return Fields(self.node[key], self.at(key), f"{what}", allowed, required)
