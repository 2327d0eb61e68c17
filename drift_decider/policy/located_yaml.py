"""Strict YAML reading for policy and policy-test files.

Why a custom loader: policies steer real spend, so a policy file must never execute anything, must
not blow up memory (alias bombs, 10 MB files, deep nesting) and every error must point at a
``file:line:column``. We compose with PyYAML's safe machinery, refuse anchors, aliases and explicit
tags outright, bound size and depth, reject duplicate keys, and return plain Python values wrapped so
each mapping and sequence remembers where it and its keys were written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from drift_decider.errors import PolicyError
from drift_decider.inputs.files import FileRefused, read_limited

MAX_FILE_BYTES = 1_000_000   # a real policy is a few KB; anything near 1 MB is a mistake or an attack
MAX_DEPTH = 64               # nesting of YAML collections; real policies stay under 15
# characters of one number: 5,000-digit integers exceed Python's int-from-text limit, and PyYAML turns a
# YAML 1.1 sexagesimal value (1:2:3...) into an int in time quadratic in its length
MAX_NUMBER_CHARS = 100
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class Located(dict):
    """A mapping that remembers where it and each of its keys were written (``pos``, ``key_pos``)."""

    pos: str
    key_pos: dict[str, str]
    value_pos: dict[str, str]

    @classmethod
    def empty(cls, pos: str) -> "Located":
        """An empty mapping written at ``pos``: filled by the loader, or standing for a section left out."""
        out = cls()
        out.pos, out.key_pos, out.value_pos = pos, {}, {}
        return out


class LocatedList(list):
    """A sequence that remembers where it and each of its items were written."""

    pos: str
    item_pos: list[str]


def _where(name: str, mark: Any) -> str:
    return f"{name}:{mark.line + 1}:{mark.column + 1}"


def _content_where(name: str, node: Any) -> str:
    """Where a value's text starts: past the opening quote of a quoted scalar."""
    quoted = isinstance(node, ScalarNode) and node.style in ("'", '"')
    return f"{name}:{node.start_mark.line + 1}:{node.start_mark.column + 1 + quoted}"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and explicit tags, and bounds nesting depth."""

    def __init__(self, stream: str, name: str) -> None:
        super().__init__(stream)
        self.source_name = name
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML hook
        event = self.peek_event()
        where = _where(self.source_name, event.start_mark)
        if isinstance(event, AliasEvent):
            raise PolicyError("YAML aliases (*name) are not allowed in policy files", where)
        if isinstance(event, (ScalarEvent, CollectionStartEvent)):
            if event.anchor is not None:
                raise PolicyError("YAML anchors (&name) are not allowed in policy files", where)
            if event.tag is not None and event.tag != "!":
                raise PolicyError(f"YAML tags are not allowed in policy files (found {event.tag!r})", where)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise PolicyError(f"nesting deeper than {MAX_DEPTH} levels", where)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_text(path: str | Path, *, limit: int = MAX_FILE_BYTES) -> str:
    """Read a UTF-8 file, refusing it before parsing when it is not a regular file or is larger than
    ``limit`` bytes (``inputs.files.read_limited``)."""
    try:
        raw = read_limited(path, limit)
    except FileRefused as exc:
        raise PolicyError(exc.reason, f"{path}:1:1") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"file is not UTF-8 ({exc.reason} at byte {exc.start})", f"{path}:1:1") from None


def load_yaml(text: str, name: str) -> Any:
    """Parse one YAML document into Located/LocatedList/scalars; every error is a PolicyError."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise PolicyError(f"document is larger than the {MAX_FILE_BYTES}-byte limit", f"{name}:1:1")
    try:
        loader = _StrictLoader(text, name)     # its reader refuses control characters at once
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position)
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1)
        raise PolicyError(f"control character U+{exc.character:04X} is not allowed in YAML",
                          f"{name}:{line + 1}:{column + 1}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise PolicyError("file is empty", f"{name}:1:1")
        return _convert(loader, node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _where(name, mark) if mark is not None else name
        raise PolicyError(f"YAML syntax error: {exc.problem or exc.context}", where) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"YAML error: {exc}", name) from None
    finally:
        loader.dispose()


def _convert(loader: _StrictLoader, node: Any) -> Any:
    where = _where(loader.source_name, node.start_mark)
    if isinstance(node, ScalarNode):
        if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
            raise PolicyError(f"number written with {len(node.value)} characters; the limit is "
                              f"{MAX_NUMBER_CHARS}", where)
        try:
            value = loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:     # e.g. a timestamp such as 2026-13-45
            raise PolicyError(f"bad {node.tag.rsplit(':', 1)[-1]} value {node.value[:40]!r}: {exc}", where) from None
        if isinstance(value, (bytes, set)):
            raise PolicyError(f"unsupported YAML value of type {type(value).__name__}", where)
        return value
    if isinstance(node, SequenceNode):
        seq = LocatedList(_convert(loader, item) for item in node.value)
        seq.pos = where
        seq.item_pos = [_content_where(loader.source_name, item) for item in node.value]
        return seq
    if isinstance(node, MappingNode):
        out = Located.empty(where)
        for key_node, value_node in node.value:
            key_where = _where(loader.source_name, key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                raise PolicyError("mapping keys must be plain strings", key_where)
            key = key_node.value      # as written: YAML 1.1 would turn a key like `on` into True
            if key in out:
                raise PolicyError(f"duplicate key {key!r} (first at {out.key_pos[key]})", key_where)
            out[key] = _convert(loader, value_node)
            out.key_pos[key] = key_where
            out.value_pos[key] = _content_where(loader.source_name, value_node)
        return out
    raise PolicyError("unsupported YAML node", where)  # pragma: no cover - PyYAML has only three kinds


def plain(value: Any) -> Any:
    """Strip location wrappers: the canonical data a policy hash is computed over."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
