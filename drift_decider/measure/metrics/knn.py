"""Exact k-nearest-neighbour search in row blocks, with memory bounded by the block size.

Structure and index metrics need the true neighbours of a few thousand queries among up to
millions of items. A full score matrix would not fit in memory; one block of queries against
all items does, and ``argpartition`` picks each row's top k in linear time.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from drift_decider.errors import InputError

Metric = Literal["ip", "cosine"]
METRICS: tuple[str, ...] = ("ip", "cosine")
DEFAULT_BLOCK_BYTES = 64 * 2**20


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def prepare(vectors: np.ndarray, metric: Metric) -> np.ndarray:
    """Vectors as searched: float32, unit rows for cosine so that cosine is the inner product."""
    if metric not in METRICS:
        raise InputError(f"unknown similarity metric {metric!r}; expected one of {', '.join(METRICS)}")
    return unit_rows(vectors) if metric == "cosine" else np.asarray(vectors, dtype=np.float32)


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int, *, metric: Metric = "ip",
              exclude: np.ndarray | None = None, block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows of ``base`` for each query by inner product or cosine, best first.

    ``exclude[i]`` is a row of ``base`` that query ``i`` may not return (its own row when the
    queries are items of the base), or -1 for none. ``block_rows`` bounds memory to
    ``block_rows * len(base)`` scores; by default blocks hold about 64 MiB.
    Returns ``(indices, scores)``, both ``(len(queries), k)``.
    """
    base = prepare(base, metric)
    queries = prepare(queries, metric)
    if base.ndim != 2 or queries.ndim != 2 or base.shape[1] != queries.shape[1]:
        raise InputError(f"k-NN needs 2-D base and queries of the same width, got {base.shape} and {queries.shape}")
    if exclude is not None and np.shape(exclude) != (len(queries),):
        raise InputError(f"exclude needs one base row (or -1) per query, got shape {np.shape(exclude)}")
    available = len(base) - (0 if exclude is None else 1)
    if not 1 <= k <= available:
        raise InputError(f"k={k} must be between 1 and {available} (rows available to each query)")
    if block_rows is None:
        block_rows = max(1, DEFAULT_BLOCK_BYTES // (4 * max(len(base), 1)))
    indices = np.empty((len(queries), k), dtype=np.int64)
    scores = np.empty((len(queries), k), dtype=np.float32)
    buffer = np.empty((min(block_rows, len(queries)), len(base)), dtype=np.float32)  # reused: no page faults
    for start in range(0, len(queries), block_rows):
        stop = min(start + block_rows, len(queries))
        block = np.matmul(queries[start:stop], base.T, out=buffer[:stop - start])
        if exclude is not None:
            rows = np.flatnonzero(exclude[start:stop] >= 0)
            block[rows, exclude[start:stop][rows]] = -np.inf
        indices[start:stop], scores[start:stop] = top_k(block, k)
    return indices, scores


def top_k(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns and values of each row's ``k`` largest entries, best first.

    For wide blocks, the k-th largest of the first eighth of the columns is a lower bound of
    each row's k-th largest overall, so only the few entries at or above it need sorting.
    Finding them reads the boolean mask as 64-bit words: most words are zero and skipped.
    For narrow blocks a plain ``argpartition`` is as fast.
    """
    rows, n = block.shape
    m = max(64 * k, n // 8)
    if 2 * m > n:
        top = np.argpartition(block, -k, axis=1)[:, -k:]
        values = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, axis=1)
    bound = np.partition(block[:, :m], m - k, axis=1)[:, m - k]
    flat = (block >= bound[:, None]).reshape(-1)
    if flat.size % 8:
        flat = np.concatenate([flat, np.zeros(8 - flat.size % 8, dtype=bool)])
    words = np.flatnonzero(flat.view(np.uint64))
    positions = (words[:, None] * 8 + np.arange(8)).ravel()
    row, col = np.divmod(positions[flat[positions]], n)
    values = block[row, col]
    order = np.lexsort((col, -values, row))
    first = np.searchsorted(row[order], np.arange(rows))[:, None] + np.arange(k)
    return col[order][first], values[order][first]


def jaccard_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard overlap of each row pair of two ``(n, k)`` neighbour-index arrays."""
    if a.shape != b.shape:
        raise InputError(f"neighbour lists differ in shape: {a.shape} vs {b.shape}")
    k = a.shape[1]
    inter = (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2))
    return inter / (2 * k - inter)
