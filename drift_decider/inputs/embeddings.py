"""Read embeddings from .npy, .npz or .parquet and refuse anything a drift statistic cannot trust.

Every error names the file and the problem, so a failing nightly job says what to fix. ``.npy``
files are memory-mapped and validated in chunks: a million-row reference is never copied whole.
"""

from __future__ import annotations

import math
import mmap
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import numpy as np

from drift_decider.errors import InputError
from drift_decider.inputs.files import regular_file_size

VECTOR_KEYS = ("embeddings", "vectors", "embedding", "vector")
ID_KEYS = ("ids", "id", "item_id", "query_id")
CHUNK_BYTES = 32 << 20    # per block read while validating, whatever the dimension
_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass(frozen=True)
class EmbeddingSet:
    """Validated embeddings: ``vectors`` is (n, d) and finite; ``ids`` (n,) when the file had them."""

    path: Path
    vectors: np.ndarray
    ids: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def iter_chunks(vectors: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, block)`` of about ``chunk_bytes`` each; a memory map's pages are released
    once the caller is done with a block, since reading alone keeps every page resident (validating
    two 1M x 384 files held 3 GB)."""
    rows = max(1, chunk_bytes // max(1, vectors.shape[1] * vectors.itemsize))
    for start in range(0, vectors.shape[0], rows):
        yield start, np.asarray(vectors[start:start + rows])
        release_pages(vectors)


def gather_rows(x: np.ndarray, rows: np.ndarray, block: int = 16) -> np.ndarray:
    """``x[rows]``, read ``block`` rows at a time with a memory map's pages released in between.

    Why: a page fault can map a whole page-cache folio (measured: ~1.4 MB per row touched), so
    1,000 rows spread over a 1.5 GB file left all of it resident.
    """
    blocks = [np.asarray(x[rows[:0]])]     # shape and dtype when ``rows`` is empty
    for start in range(0, len(rows), block):
        blocks.append(np.asarray(x[rows[start:start + block]]))
        release_pages(x)
    return np.concatenate(blocks)


def release_pages(x: np.ndarray) -> None:
    """Drop the pages of a read-only memory map from this process (they stay in the page cache),
    so resident memory stays near a few chunks even for files larger than RAM."""
    mapping = getattr(x, "_mmap", None)
    if isinstance(x, np.memmap) and x.mode == "r" and mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def load_embeddings(path: str | Path, *, array: str | None = None, ids: str | None = None) -> EmbeddingSet:
    """Load and validate one embedding file.

    ``array`` names the array (``.npz``) or column (``.parquet``) holding vectors; ``ids`` the one
    holding ids. Without them the conventional names (``embeddings``/``vectors``, ``ids``/``item_id``)
    or the only candidate are used.
    """
    path = Path(path)
    if regular_file_size(path) == 0:
        raise InputError(f"{path}: file is empty")
    readers = {".npy": _read_npy, ".npz": _read_npz, ".parquet": _read_parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"{path}: unsupported file type {path.suffix!r}; use .npy, .npz or .parquet")
    try:
        vectors, id_array = reader(path, array, ids)
    except InputError:
        raise
    except (ValueError, OSError, KeyError) as exc:
        raise InputError(f"{path}: cannot read embeddings: {exc}") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npz (zip) archive, truncated or corrupt: {exc}") from None
    except MemoryError:
        raise InputError(f"{path}: too large to load into memory (a .npy file is memory-mapped instead)") from None
    validate_vectors(vectors, path)
    if id_array is not None:
        id_array = checked_ids(id_array, vectors.shape[0], path)
    return EmbeddingSet(path=path, vectors=vectors, ids=id_array)


def checked_ids(ids: Any, rows: int, path: Path | str) -> np.ndarray:
    """``ids`` if they are a 1-D array of unique numbers or strings, one per vector, else InputError.
    Byte-string ids come back as the UTF-8 text they hold, as parquet binary ids are read."""
    if not isinstance(ids, np.ndarray) or ids.ndim != 1:
        shape = ids.shape if isinstance(ids, np.ndarray) else type(ids).__name__
        raise InputError(f"{path}: ids must be a 1-D array (one per vector), got {shape}")
    if ids.dtype.kind not in "iufSUO":
        raise InputError(f"{path}: ids of dtype {ids.dtype}; expected integers or strings")
    if ids.dtype.kind == "S":
        try:
            ids = np.char.decode(ids, "utf-8")
        except UnicodeDecodeError:
            row = first_non_utf8(ids.tolist())
            raise InputError(f"{path}: ids are bytes and the one at row {row} is not UTF-8 text; store ids "
                             f"as integers or text") from None
    if len(ids) != rows:
        raise InputError(f"{path}: {len(ids)} ids for {rows} vectors")
    if ids.dtype.kind == "f" and not np.isfinite(ids).all():
        raise InputError(f"{path}: ids hold NaN or inf, first at row {int(np.argmin(np.isfinite(ids)))}")
    unique, counts = np.unique(ids, return_counts=True)
    if len(unique) != len(ids):
        repeated = int(np.argmax(counts > 1))
        rows = np.flatnonzero(ids == unique[repeated])[:2].tolist()
        raise InputError(f"{path}: ids are not unique (duplicates: each item must appear once): id "
                         f"{unique[repeated:repeated + 1].tolist()[0]!r} is at rows {rows[0]} and {rows[1]}"
                         + (f", and {len(ids) - len(unique) - 1} more row(s) repeat an id"
                            if len(ids) - len(unique) > 1 else ""))
    return ids


def first_non_utf8(values: Iterable[bytes]) -> int:
    """The position of the first value that is not UTF-8 text (after a decode of them all failed)."""
    for row, value in enumerate(values):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return row
    raise ValueError("every value is UTF-8 text")


def validate_vectors(vectors: np.ndarray, path: Path | str) -> None:
    """Raise InputError unless ``vectors`` is a non-empty, 2-D, real-valued and finite matrix."""
    if not isinstance(vectors, np.ndarray):
        raise InputError(f"{path}: the embeddings are a {type(vectors).__name__}, not an array (.npy member)")
    if vectors.ndim != 2:
        raise InputError(f"{path}: embeddings must be 2-D (rows x dimensions), got shape {vectors.shape}")
    if vectors.shape[0] == 0:
        raise InputError(f"{path}: no rows (empty embedding set)")
    if vectors.shape[1] == 0:
        raise InputError(f"{path}: rows have zero dimensions")
    if vectors.dtype == np.bool_ or not (np.issubdtype(vectors.dtype, np.floating)
                                         or np.issubdtype(vectors.dtype, np.integer)):
        raise InputError(f"{path}: dtype {vectors.dtype} is not a real number type")
    bad_rows, huge_rows, first_bad, first_huge = 0, 0, None, None
    for start, block in iter_chunks(vectors):
        bad, huge = unmeasurable_rows(block)
        if bad.any() and first_bad is None:
            first_bad = start + int(np.argmax(bad))
        if huge.any() and first_huge is None:
            first_huge = start + int(np.argmax(huge))
        bad_rows, huge_rows = bad_rows + int(bad.sum()), huge_rows + int(huge.sum())
    if bad_rows:
        raise InputError(f"{path}: {bad_rows} row(s) contain NaN or inf; first at row {first_bad}")
    if huge_rows:
        raise InputError(f"{path}: {huge_rows} row(s) hold {TOO_LARGE % value_limit(vectors.shape[1])}; "
                         f"first at row {first_huge}")


TOO_LARGE = "values beyond ±%.3g, whose squared distances overflow float32"


def value_limit(dim: int) -> float:
    """The largest magnitude a value may have: squared distances, summed over ``dim`` dimensions in
    float32, must stay finite (|x|^2 * 4 * dim below float32's maximum)."""
    return math.sqrt(float(np.finfo(np.float32).max) / (4 * dim))


def unmeasurable_rows(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of a block's rows holding NaN or inf, and of its other rows holding values beyond
    ``value_limit``: what every reader of vectors (files here, Spark's batches) refuses."""
    bad = ~np.isfinite(block).all(axis=1) if block.dtype.kind == "f" else np.zeros(len(block), bool)
    values = block if block.dtype.kind == "f" else block.astype(np.float64)
    with np.errstate(invalid="ignore"):
        huge = ~bad & (np.abs(values) > value_limit(block.shape[1])).any(axis=1)
    return bad, huge


def check_same_dim(reference_dim: int, current: EmbeddingSet, reference_name: str = "reference") -> None:
    if current.dim != reference_dim:
        raise InputError(f"{current.path}: dimension mismatch: its vectors have {current.dim} dimensions, "
                         f"{reference_name} has {reference_dim}")


def _pick(names: list[str], wanted: str | None, conventional: tuple[str, ...], what: str,
          path: Path, required: bool) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise InputError(f"{path}: no {what} named {wanted!r}; found {names}")
        return wanted
    for name in conventional:
        if name in names:
            return name
    if required and len(names) == 1:
        return names[0]
    if required:
        raise InputError(f"{path}: cannot tell which of {names} holds the {what}; name it explicitly")
    return None


def _read_npy(path: Path, array: str | None, ids: str | None) -> tuple[np.ndarray, None]:
    if array or ids:
        raise InputError(f"{path}: a .npy file holds one array; use .npz or .parquet to name arrays or ids")
    with path.open("rb") as fh:
        _check_npy_header(fh, path.stat().st_size, str(path))
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False), None
    except ValueError as exc:
        raise InputError(f"{path}: not a numeric .npy array ({exc})") from exc


def _check_npy_header(fh: IO[bytes], size: int, where: str) -> None:
    """Refuse a .npy stream whose header is not NumPy's or declares more data than ``size`` holds.

    Why before np.load: it takes any file without the magic string for a pickle ("pickled data" for
    random bytes), and it allocates what a header declares (10**12 rows: terabytes) before reading.
    """
    if fh.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
        raise InputError(f"{where}: not a .npy array: it does not start with NumPy's header")
    fh.seek(0)
    try:
        version = np.lib.format.read_magic(fh)
        if version not in _NPY_HEADERS:
            raise InputError(f"{where}: unsupported .npy format version {version[0]}.{version[1]}")
        shape, _, dtype = _NPY_HEADERS[version](fh)
    except ValueError as exc:
        raise InputError(f"{where}: corrupt .npy header ({exc})") from None
    if dtype.hasobject:
        raise InputError(f"{where}: holds Python objects (dtype {dtype}), not numbers")
    declared, available = math.prod(shape) * dtype.itemsize, size - fh.tell()
    if declared > available:
        raise InputError(f"{where}: the header declares shape {shape} of {dtype} ({declared:,} bytes) but "
                         f"{available:,} bytes follow it: truncated or corrupt")


def _read_npz(path: Path, array: str | None, ids: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".npy"):
                with archive.open(info) as member:
                    _check_npy_header(member, info.file_size, f"{path}: array {info.filename[:-4]!r}")
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        id_name = _pick(names, ids, ID_KEYS, "ids array", path, required=False)
        vector_names = [n for n in names if n != id_name]
        vector_name = _pick(vector_names, array, VECTOR_KEYS, "embeddings array", path, required=True)
        return archive[vector_name], (archive[id_name] if id_name else None)


def _read_parquet(path: Path, array: str | None, ids: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable parquet file ({exc})") from exc
    names = table.column_names
    id_name = _pick(names, ids, ID_KEYS, "id column", path, required=False)
    list_columns = [n for n in names if n != id_name and (pa.types.is_list(table.schema.field(n).type)
                    or pa.types.is_fixed_size_list(table.schema.field(n).type)
                    or pa.types.is_large_list(table.schema.field(n).type))]
    id_array = _id_column(table, id_name, path) if id_name else None
    if array is not None or list_columns:
        column = _pick(list_columns or names, array, VECTOR_KEYS, "embedding column", path, required=True)
        return _list_column_to_matrix(table.column(column).combine_chunks(), path, column), id_array
    numeric = [n for n in names if n != id_name
               and (pa.types.is_floating(table.schema.field(n).type)
                    or pa.types.is_integer(table.schema.field(n).type))]
    if not numeric:
        raise InputError(f"{path}: no list column and no numeric columns to read embeddings from")
    return np.column_stack([table.column(n).to_numpy() for n in numeric]), id_array


def _id_column(table: Any, name: str, path: Path) -> np.ndarray:
    """A parquet id column as an array: integers, floats or strings, without nulls. Binary ids are read
    as the UTF-8 text they hold, so a reference and a check of the same file agree on their kind."""
    import pyarrow as pa

    column = table.column(name).combine_chunks()
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_string(kind)
            or pa.types.is_large_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
        raise InputError(f"{path}: id column {name!r} is {kind}; expected integers or strings")
    if column.null_count:
        row = int(np.flatnonzero(np.asarray(column.is_null()))[0])
        raise InputError(f"{path}: id column {name!r} has {column.null_count} null(s), first at row {row}")
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            column = column.cast(pa.string())
        except pa.ArrowInvalid:
            raise InputError(f"{path}: id column {name!r} is binary and not UTF-8 text (first at row "
                             f"{first_non_utf8(column.to_pylist())}); store ids as integers or text") from None
    return column.to_numpy(zero_copy_only=False)


def _list_column_to_matrix(column, path: Path, name: str) -> np.ndarray:
    import pyarrow as pa

    if column.null_count:
        raise InputError(f"{path}: column {name!r} has {column.null_count} null row(s)")
    if pa.types.is_fixed_size_list(column.type):
        width = column.type.list_size
    else:
        lengths = np.asarray(column.value_lengths())
        if len(lengths) and (lengths != lengths[0]).any():
            row = int(np.argmax(lengths != lengths[0]))
            raise InputError(f"{path}: column {name!r} has rows of different lengths "
                             f"({lengths[0]} at row 0, {lengths[row]} at row {row})")
        width = int(lengths[0]) if len(lengths) else 0
    values = column.flatten().to_numpy(zero_copy_only=False)
    if width == 0 or len(column) == 0:
        return np.empty((len(column), width), dtype=np.float32)
    return values.reshape(len(column), width)
