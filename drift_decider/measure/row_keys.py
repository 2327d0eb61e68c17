"""Seeded 64-bit keys of rows, computed from each row's id, so a row's key is the same in whatever
process, partition or chunk it is read.

The keys select a profile's row sample (bottom-k), its hash halves (lowest bit) and the sketches'
pilot rows. They are a function of the id and the seed alone, never of the row's position among
other rows or of its content: the same ids give the same sample however the data are split, and a
repeated vector is sampled like any other row (content keys keep or drop all copies together).

Integer ids are keyed as 64-bit integers; a set without ids (a plain ``.npy``) uses its row numbers
as ids, which gives the keys profiles had before ids were used. Any other id (text, bytes) is keyed
by an 8-byte BLAKE2b digest of its UTF-8 text, so ``"42"`` and ``42`` are different ids.
"""

from __future__ import annotations

import hashlib

import numpy as np


def row_numbers(start: int, n: int) -> np.ndarray:
    """Ids of rows without ids: their row numbers ``start .. start + n - 1``."""
    return np.arange(start, start + n, dtype=np.int64)


def row_keys(seed: int, ids: np.ndarray) -> np.ndarray:
    """(n,) uint64 keys: splitmix64 of each id mixed with a salt drawn from ``seed``; distinct ids
    give independent-looking uniform 64-bit keys."""
    salt = np.random.default_rng([int(seed), 0x5A17]).integers(0, 2**63, dtype=np.uint64)
    h = _id_words(np.asarray(ids))
    with np.errstate(over="ignore"):
        h = (h * np.uint64(0x9E3779B97F4A7C15)) ^ salt
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def bottom_keys(keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest keys, ordered by key."""
    keep = np.argpartition(keys, k - 1)[:k] if len(keys) > k else np.arange(len(keys))
    return keep[np.argsort(keys[keep], kind="stable")]


def _id_words(ids: np.ndarray) -> np.ndarray:
    if ids.dtype.kind == "i":
        return ids.astype(np.int64, copy=False).view(np.uint64)
    if ids.dtype.kind == "u":
        return ids.astype(np.uint64, copy=False)
    return np.fromiter((int.from_bytes(hashlib.blake2b(_text(i).encode(), digest_size=8).digest(), "little")
                        for i in ids.tolist()), dtype=np.uint64, count=len(ids))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
