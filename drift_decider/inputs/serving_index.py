"""The serving ANN index as the checks see it: the index file, the snapshot it was built from, metadata.

Index health compares what the index serves with what the catalogue holds now, so besides the
ANN structure (hnswlib or faiss-cpu) a saved index keeps the ids and vectors it was built from
and when it was built. An index known only by that snapshot (kind ``exact``) is searched exactly:
the health metrics then measure staleness and coverage, and recall is that of a perfect index.

On disk, a directory: ``index.json`` (kind, metric, built_at, parameters), ``snapshot.npz``
(``ids``, ``vectors``) and, for ANN kinds, ``index.hnsw`` or ``index.faiss``.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from drift_decider.errors import InputError
from drift_decider.inputs.embeddings import VECTOR_KEYS, checked_ids, validate_vectors
from drift_decider.inputs.files import read_limited
from drift_decider.inputs.times import parse_time
from drift_decider.measure.metrics.knn import METRICS, Metric, exact_knn, prepare

KINDS = ("hnsw", "faiss-hnsw", "exact")
MAX_META_BYTES = 1 << 20       # a few hundred bytes when written by save()
ANN_FILES = {"hnsw": "index.hnsw", "faiss-hnsw": "index.faiss"}
META_FILE = "index.json"
SNAPSHOT_FILE = "snapshot.npz"
FORMAT_VERSION = 1


@dataclass
class ServingIndex:
    """A searchable index plus the snapshot of ids and vectors it was built from."""

    ids: np.ndarray
    vectors: np.ndarray
    kind: str = "exact"
    metric: Metric = "ip"
    built_at: datetime | None = None
    params: dict[str, Any] = field(default_factory=dict)
    engine: Any = field(default=None, repr=False)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, *, kind: str = "hnsw", metric: Metric = "ip",
              seed: int = 0, built_at: datetime | None = None, m: int = 16, ef_construction: int = 200,
              ef_search: int = 100) -> "ServingIndex":
        """Build an index over ``vectors`` (one row per id). Single-threaded, so a seed gives one index."""
        ids, vectors = _check_snapshot(ids, vectors, "the vectors to index")
        if kind not in KINDS:
            raise InputError(f"unknown index kind {kind!r}; expected one of {', '.join(KINDS)}")
        prepare(vectors[:1], metric)  # validates the metric name
        params = {} if kind == "exact" else {"m": m, "ef_construction": ef_construction,
                                               "ef_search": ef_search, "seed": seed}
        index = cls(ids, vectors, kind, metric, built_at or datetime.now(timezone.utc), params)
        if kind == "hnsw":
            index.engine = _build_hnsw(vectors, metric, m, ef_construction, seed)
        elif kind == "faiss-hnsw":
            index.engine = _build_faiss(vectors, metric, m, ef_construction)
        return index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids and similarity scores of the top ``k`` indexed items per query, best first."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.vectors.shape[1]:
            raise InputError(f"queries must be (n, {self.vectors.shape[1]}), got {queries.shape}")
        if not 1 <= k <= len(self.ids):
            raise InputError(f"k={k} must be between 1 and the {len(self.ids)} indexed items")
        if self.kind == "hnsw":
            self.engine.set_ef(max(self.params["ef_search"], k))
            labels, distances = self.engine.knn_query(queries, k=k, num_threads=1)
            rows, scores = labels.astype(np.int64), 1.0 - distances
        elif self.kind == "faiss-hnsw":
            self.engine.hnsw.efSearch = max(self.params["ef_search"], k)
            scores, rows = self.engine.search(prepare(queries, self.metric), k)
        else:
            rows, scores = exact_knn(self.vectors, queries, k, metric=self.metric)
        return self.ids[rows], np.asarray(scores, dtype=np.float32)

    def save(self, directory: Path | str) -> Path:
        """Write the index directory; returns its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / SNAPSHOT_FILE, ids=self.ids, vectors=self.vectors)
        if self.kind == "hnsw":
            self.engine.save_index(str(directory / ANN_FILES["hnsw"]))
        elif self.kind == "faiss-hnsw":
            import faiss
            faiss.write_index(self.engine, str(directory / ANN_FILES["faiss-hnsw"]))
        meta = {"format": FORMAT_VERSION, "kind": self.kind, "metric": self.metric,
                "built_at": self.built_at.isoformat() if self.built_at else None,
                "count": int(len(self.ids)), "dim": int(self.vectors.shape[1]), "params": self.params}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, path: Path | str, *, snapshot_metric: Metric = "ip") -> "ServingIndex":
        """Load an index directory written by :meth:`save`, or a bare ``.npz`` snapshot (ids, vectors).

        A bare snapshot is searched exactly with ``snapshot_metric``; a ``built_at`` entry in it
        (ISO text) dates it. Whatever a damaged or foreign file makes the readers raise is an
        InputError naming it.
        """
        try:
            return cls._load(Path(path), snapshot_metric)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:    # numpy's readers
            raise InputError(f"{path}: not a readable serving index ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _load(cls, path: Path, snapshot_metric: Metric) -> "ServingIndex":
        if path.is_file() and path.suffix == ".npz":
            ids, vectors, built_at = _read_snapshot(path)
            prepare(vectors[:1], snapshot_metric)  # validates the metric name
            return cls(ids, vectors, "exact", snapshot_metric, _built_at(built_at, path))
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise InputError(f"{path}: not an index directory (no {META_FILE}) and not a .npz snapshot")
        meta = _read_meta(meta_path)
        ids, vectors, _ = _read_snapshot(path / SNAPSHOT_FILE)
        kind, metric = meta["kind"], meta["metric"]
        index = cls(ids, vectors, kind, metric, _built_at(meta.get("built_at"), meta_path),
                    dict(meta.get("params", {})))
        if kind in ANN_FILES:
            index.engine = _load_engine(path / ANN_FILES[kind], kind, metric, vectors.shape[1], len(ids))
        return index


def _check_snapshot(ids: np.ndarray, vectors: np.ndarray, path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """The snapshot's ids and float32 vectors, checked as an embeddings file's are (2-D, real, values a
    search can score) with one unique id per vector."""
    ids = np.asarray(ids)
    if ids.dtype == object:
        ids = ids.astype(str)
    vectors = np.asarray(vectors)
    validate_vectors(vectors, path)
    return checked_ids(ids, len(vectors), path), np.asarray(vectors, dtype=np.float32)


def _read_meta(path: Path) -> dict[str, Any]:
    """The index metadata :meth:`ServingIndex.save` writes, each field checked (a foreign file names what is wrong)."""
    try:
        meta = json.loads(read_limited(path, MAX_META_BYTES).decode("utf-8"))
    except (ValueError, RecursionError) as exc:      # not JSON (UnicodeDecodeError is a ValueError), or nested
        raise InputError(f"{path}: unreadable index metadata ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: index metadata must be a JSON object, got {type(meta).__name__}")
    if meta.get("kind") not in KINDS:
        raise InputError(f"{path}: unknown index kind {meta.get('kind')!r}; expected one of {', '.join(KINDS)}")
    if meta.get("metric") not in METRICS:
        raise InputError(f"{path}: unknown metric {meta.get('metric')!r}; expected one of {', '.join(METRICS)}")
    if not isinstance(meta.get("built_at", ""), str) or not isinstance(meta.get("params", {}), dict):
        raise InputError(f"{path}: 'built_at' must be ISO-8601 text and 'params' an object")
    ef_search = meta.get("params", {}).get("ef_search")
    if meta["kind"] != "exact" and (type(ef_search) is not int or not 1 <= ef_search < 2**31):
        raise InputError(f"{path}: a {meta['kind']} index needs params.ef_search, a positive 32-bit integer "
                         f"(got {str(ef_search)[:40]})")
    return meta


def _read_snapshot(path: Path) -> tuple[np.ndarray, np.ndarray, str | None]:
    if not path.is_file():
        raise InputError(f"{path}: index snapshot not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            # `vectors`, else any name an embeddings file may use for them (embeddings, ...)
            key = next((name for name in ("vectors", *VECTOR_KEYS) if name in data.files), "vectors")
            ids, vectors = data["ids"], data[key]
            built_at = str(data["built_at"]) if "built_at" in data.files else None
    except (ValueError, KeyError, OSError) as exc:
        raise InputError(f"{path}: unreadable snapshot, expected arrays 'ids' and 'vectors' (or "
                         f"{', '.join(repr(k) for k in VECTOR_KEYS if k != 'vectors')}) ({exc})") from None
    ids, vectors = _check_snapshot(ids, vectors, path)
    return ids, vectors, built_at


def _require_width(path: Path, file_dim: int, dim: int) -> None:
    if file_dim != dim:
        raise InputError(f"{path}: the index holds {file_dim}-d vectors, its snapshot {dim}-d: rebuild the index "
                         f"or copy its whole folder")


def _hnsw_file_dim(path: Path) -> int:
    """The vectors' width an hnswlib index file was saved with: its header's first six 8-byte fields
    are offsetLevel0, max_elements, cur_element_count, size_data_per_element, label_offset and
    offsetData, and a vector (float32) fills label_offset - offsetData bytes."""
    with open(path, "rb") as fh:
        head = fh.read(48)
    if len(head) < 48:
        raise ValueError("the file is shorter than an hnswlib header")
    label_offset, data_offset = struct.unpack("<6Q", head)[4:]
    return (label_offset - data_offset) // 4


def _built_at(text: str | None, where: Path) -> datetime | None:
    return None if text is None else parse_time(text, f"{where}: built_at")


def _build_hnsw(vectors: np.ndarray, metric: Metric, m: int, ef_construction: int, seed: int) -> Any:
    import hnswlib
    engine = hnswlib.Index(space=metric, dim=vectors.shape[1])
    engine.init_index(max_elements=len(vectors), M=m, ef_construction=ef_construction, random_seed=seed)
    engine.add_items(vectors, np.arange(len(vectors)), num_threads=1)
    return engine


def _build_faiss(vectors: np.ndarray, metric: Metric, m: int, ef_construction: int) -> Any:
    import faiss
    engine = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    engine.hnsw.efConstruction = ef_construction
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        engine.add(prepare(vectors, metric))
    finally:
        faiss.omp_set_num_threads(threads)
    return engine


def _load_engine(path: Path, kind: str, metric: Metric, dim: int, count: int) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: ANN index file not found")
    try:
        if kind == "hnsw":
            import hnswlib
            _require_width(path, _hnsw_file_dim(path), dim)      # hnswlib would read any width without a word
            engine = hnswlib.Index(space=metric, dim=dim)
            engine.load_index(str(path), max_elements=count)
            size = engine.get_current_count()
        else:
            import faiss
            engine = faiss.read_index(str(path))
            _require_width(path, engine.d, dim)
            size = engine.ntotal
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the {kind} index ({exc})") from None
    if size != count:
        raise InputError(f"{path}: index holds {size} items but its snapshot has {count}")
    return engine
