"""The time window a check is about: its id, its end, and a digest of the data it saw."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from drift_decider.errors import InputError
from drift_decider.inputs.embeddings import EmbeddingSet
from drift_decider.inputs.times import parse_time

DIGEST_SAMPLE_ROWS = 4096


@dataclass(frozen=True)
class Window:
    window_id: str
    window_end: datetime      # timezone-aware, UTC
    dataset_name: str
    dataset_digest: str
    source: str               # where the current embeddings were read from


def embeddings_digest(embeddings: EmbeddingSet) -> str:
    """A short, stable digest of shape, dtype and an evenly spaced sample of rows.

    Hashing every byte of a 1.5 GB file would dominate a check; a strided sample plus the shape
    tells two windows apart in practice and is identical for identical files.
    """
    vectors = embeddings.vectors
    rows = np.unique(np.linspace(0, vectors.shape[0] - 1, min(DIGEST_SAMPLE_ROWS, vectors.shape[0])).astype(np.int64))
    digest = hashlib.sha256(f"{vectors.shape}|{vectors.dtype}".encode())
    digest.update(np.ascontiguousarray(vectors[rows]).tobytes())
    if embeddings.ids is not None:
        digest.update(np.asarray(embeddings.ids).astype(str).tobytes())
    return digest.hexdigest()[:16]


def parse_window_end(text: str | None, option: str = "--window-end") -> datetime:
    """``parse_time`` of an option; None means now."""
    return datetime.now(timezone.utc).replace(microsecond=0) if text is None else parse_time(text, option)


MAX_WINDOW_ID_CHARS = 500   # an id, not a document: it becomes MLflow tags and a run name


def make_window(current: EmbeddingSet, window_id: str | None, window_end: datetime,
                also: tuple[EmbeddingSet | None, ...] = (), data_growth: float | None = None) -> Window:
    """The window of a check of ``current``; its digest also covers the other inputs given (catalogue,
    queries, data growth), so re-using a window id with any different data can be told apart. The id and
    end come validated (``require_window_id``, ``recordable_window_end``)."""
    digest = embeddings_digest(current)
    others = [embeddings_digest(embeddings) for embeddings in also if embeddings is not None]
    if others:
        digest = hashlib.sha256("|".join([digest, *others]).encode()).hexdigest()[:16]
    return named_window(window_id, window_end, str(current.path), digest, data_growth)


EARLIEST_WINDOW_END = datetime(1970, 1, 1, tzinfo=timezone.utc)   # MLflow stores times as ms since then
FUTURE_SLACK = timedelta(hours=38)     # a day, plus the widest UTC offset (+14 h)


def named_window(window_id: str | None, window_end: datetime, source: str, digest: str,
                 data_growth: float | None = None) -> Window:
    """A window of data from ``source`` with ``digest`` (however it was computed: here, or on Spark).
    A data growth the check was told is part of its data: the same embeddings a week later, with more
    data arrived, are another window (and the same window id with another growth is refused)."""
    if data_growth is not None:
        digest = hashlib.sha256(f"{digest}|data.growth={float(data_growth)!r}".encode()).hexdigest()[:16]
    return Window(window_id=window_id or f"data-{digest}", window_end=window_end,
                  dataset_name=Path(source.rstrip("/")).stem, dataset_digest=digest, source=source)


def recordable_window_end(window_end: datetime, now: datetime | None = None) -> datetime:
    """``window_end``, unless MLflow cannot record it (before 1970: it stores milliseconds since then)
    or it has not come yet: beyond FUTURE_SLACK after ``now`` (a typo such as 3026; the version's
    published decision follows its latest window, and would stay on that one for good). The slack lets
    a window named by the end of its day, in any time zone, be checked during that day."""
    if window_end < EARLIEST_WINDOW_END:
        raise InputError(f"--window-end {window_end.isoformat()} is before 1970-01-01T00:00:00Z: MLflow records "
                         f"times as milliseconds since then, and cannot record this window")
    now = now or datetime.now(timezone.utc)
    if window_end > now + FUTURE_SLACK:
        raise InputError(f"--window-end {window_end.isoformat()} is more than 38 hours after now "
                         f"({now.isoformat(timespec='seconds')}): a window is checked once it has ended; "
                         f"a typo here would hold the version's published decision on this window for good")
    return window_end


def require_window_id(window_id: str | None) -> None:
    """An id, not a document: refused before any data is read. It names MLflow tags and runs, so it is
    one line of printable text (None: derived from the data)."""
    if window_id is None:
        return
    if not window_id.strip():
        raise InputError("--window-id is empty: leave it out to name the window by its data")
    if len(window_id) > MAX_WINDOW_ID_CHARS:
        raise InputError(f"--window-id has {len(window_id)} characters; at most {MAX_WINDOW_ID_CHARS}")
    control = next((c for c in window_id if not c.isprintable()), None)
    if control is not None:
        raise InputError(f"--window-id {window_id!r} holds the control character {control!r}: one line of text")
