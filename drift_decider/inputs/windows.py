"""The time window a check is about: its id, its end, and a digest of the data it saw."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from drift_decider.errors import InputError
from drift_decider.inputs.embeddings import EmbeddingSet

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
    """ISO 8601 to an aware UTC datetime; naive times are taken as UTC; None means now."""
    if text is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{option} {text!r} is not an ISO 8601 date-time (e.g. 2026-11-25T00:00:00Z)") from exc
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


MAX_WINDOW_ID_CHARS = 500   # an id, not a document: it becomes MLflow tags and a run name


def make_window(current: EmbeddingSet, window_id: str | None, window_end: datetime,
                also: tuple[EmbeddingSet | None, ...] = ()) -> Window:
    """The window of a check of ``current``; its digest also covers the other inputs given (catalogue,
    queries), so re-using a window id with any different data can be told apart."""
    require_window_id(window_id)
    digest = embeddings_digest(current)
    others = [embeddings_digest(embeddings) for embeddings in also if embeddings is not None]
    if others:
        digest = hashlib.sha256("|".join([digest, *others]).encode()).hexdigest()[:16]
    return named_window(window_id, window_end, str(current.path), digest)


def named_window(window_id: str | None, window_end: datetime, source: str, digest: str) -> Window:
    """A window of data from ``source`` with ``digest`` (however it was computed: here, or on Spark)."""
    return Window(window_id=window_id or f"data-{digest}", window_end=window_end,
                  dataset_name=Path(source.rstrip("/")).stem, dataset_digest=digest, source=source)


def require_window_id(window_id: str | None) -> None:
    """An id, not a document: refused before any data is read."""
    if window_id and len(window_id) > MAX_WINDOW_ID_CHARS:
        raise InputError(f"--window-id has {len(window_id)} characters; at most {MAX_WINDOW_ID_CHARS}")
