"""A local spool for checks MLflow could not take: complete measurement and decision, as JSON.

When the tracking server dies mid-check, the work is not lost and not half-written: the check is
saved here whole and `drift-decider sync` lands it later, exactly once (the window id is the key).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from drift_decider.errors import InputError
from drift_decider.inputs.times import parse_time
from drift_decider.inputs.windows import recordable_window_end
from drift_decider.policy.records import ACTIONS, MODES

DEFAULT_SPOOL_DIR = Path(".drift-decider") / "spool"
SPOOL_ENV = "DRIFT_DECIDER_SPOOL_DIR"


def spool_dir(explicit: str | Path | None = None) -> Path:
    """``--spool-dir``, else ``$DRIFT_DECIDER_SPOOL_DIR``, else ``.drift-decider/spool`` here."""
    return Path(explicit or os.environ.get(SPOOL_ENV) or DEFAULT_SPOOL_DIR)


@dataclass(frozen=True)
class SpoolEntry:
    model: str
    version: str
    model_id: str
    kind: str
    window: dict[str, Any]          # window_id, window_end (ISO), dataset_name, dataset_digest, source
    payload: dict[str, Any]         # values, inputs, evidence, decision (None: to be decided at sync)
    step: int
    extra_tags: dict[str, str]
    orphan_run_id: str | None
    reason: str
    attempts: list[str] = field(default_factory=list)   # attempt ids of every write that failed (tags.ATTEMPT)
    tracking_uri: str = ""          # the store it is for, credentials stripped ("" in older entries)
    policy_path: str = ""           # a check measured but not decided (payload decision None): the policy
    policy_sha256: str = ""         # that decides it at sync, and its digest then

    @property
    def key(self) -> str:
        """The file name: the window, and the first attempt, so two failed checks of one window keep
        two entries (sync lands one and finds the window recorded for the other)."""
        first = f"-{self.attempts[0][:12]}" if self.attempts else ""
        return _safe(f"{self.kind}-{self.model}-v{self.version}-{self.window['window_id']}{first}")


def write_entry(directory: Path, entry: SpoolEntry) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves a truncated entry; readable by the
    user alone, as an entry holds a model's metrics and decision."""
    _private_dir(directory)
    path = directory / f"{entry.key}.json"
    tmp = path.with_suffix(".json.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        os.fchmod(handle.fileno(), 0o600)       # a leftover tmp file of an older version kept its mode
        handle.write(json.dumps(asdict(entry), indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path


def _private_dir(directory: Path) -> None:
    """Create the spool folder for the user alone; an existing folder is left as it is (it may be one
    the user chose to share, such as /tmp), its entries are private all the same."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def read_entries(directory: Path) -> tuple[list[tuple[Path, SpoolEntry]], list[tuple[Path, str]]]:
    """The spool's entries, and the files that are not entries with why (edited, truncated or foreign
    files: `sync` reports and keeps them, and lands the others)."""
    if not directory.is_dir():
        return [], []
    entries, unreadable = [], []
    for path in sorted(directory.glob("*.json")):
        try:
            entries.append((path, read_entry(path)))
        except InputError as exc:
            unreadable.append((path, str(exc)))
    return entries, unreadable


# the fields an entry (read back, older entries' missing ones filled in), its window and its payload must
# have, and their JSON types
_ENTRY_FIELDS = {"model": str, "version": str, "model_id": str, "kind": str, "step": int, "extra_tags": dict,
                 "orphan_run_id": (str, type(None)), "reason": str, "attempts": list, "tracking_uri": str,
                 "policy_path": str, "policy_sha256": str}
_WINDOW_FIELDS = {"window_id": str, "window_end": str, "dataset_name": str, "dataset_digest": str, "source": str}
_PAYLOAD_FIELDS = {"values": dict, "inputs": dict, "evidence": dict, "decision": (dict, type(None))}
# what recording reads of a decision record (recorder.decision_tags)
_DECISION_FIELDS = {"action": str, "decided_at": str, "decision_id": str, "rule_id": (str, type(None)),
                    "policy": (dict, type(None))}


def read_entry(path: Path) -> SpoolEntry:
    """One spool entry, or an InputError naming the file and what is wrong with it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entry = SpoolEntry(**raw) if isinstance(raw, dict) else None
    except (OSError, UnicodeDecodeError, RecursionError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a readable spool entry: {exc}") from None
    if entry is None:
        raise InputError(f"{path}: not a spool entry (a JSON {type(raw).__name__}, not an object)")
    for what, value, fields in (("entry", vars(entry), _ENTRY_FIELDS), ("window", entry.window, _WINDOW_FIELDS),
                                ("payload", entry.payload, _PAYLOAD_FIELDS)):
        if not isinstance(value, dict):
            raise InputError(f"{path}: spool entry's {what} is a {type(value).__name__}, not an object")
        wrong = [key for key, kind in fields.items()
                 if not isinstance(value.get(key), kind) or isinstance(value.get(key), bool)]
        if what == "entry" and "attempts" not in wrong and not all(isinstance(a, str) for a in entry.attempts):
            wrong.append("attempts")
        if what == "window":        # read back as a Window: exactly its fields
            wrong += sorted(set(value) - set(fields))
        if wrong:
            raise InputError(f"{path}: spool entry's {what} lacks or mistypes {', '.join(wrong)}")
    try:
        recordable_window_end(parse_time(entry.window["window_end"], "window_end"))
    except InputError as exc:
        raise InputError(f"{path}: spool entry's window: {exc}") from None
    decision = entry.payload["decision"]
    if decision is not None:
        wrong = [key for key, kind in _DECISION_FIELDS.items() if not isinstance(decision.get(key), kind)]
        if decision.get("action") not in ACTIONS or decision.get("mode", "enforce") not in MODES:
            wrong.append("action or mode")
        if wrong:
            raise InputError(f"{path}: spool entry's decision lacks or mistypes {', '.join(wrong)}")
    return entry


@contextlib.contextmanager
def spool_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on the spool, so two `sync` runs never replay the same entry at once."""
    _private_dir(directory)
    with os.fdopen(os.open(directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:200]
