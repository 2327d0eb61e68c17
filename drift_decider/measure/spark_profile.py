"""Profiles of a Spark DataFrame's embeddings, built where the rows are: the same profile as
``EmbeddingProfile.from_array`` on the same rows and ids, whatever the partitioning.

Rows are keyed by their id (drift_decider.measure.row_keys), which every partition knows, so the
sample, the hash halves and the sketches' pilot do not depend on how the rows are split. Three
``mapInArrow`` passes, each merged in a tree on the executors (``treeReduce``):

1. keys: each partition's ``max(sample_rows, 1,000)`` smallest keys (8 bytes each; only the id
   column is read). They give the whole set's row count, the key of its ``sample_rows``-th row
   and of its 1,000th (the pilot's last).
2. pilot (only when the sketch spec is derived here, for a reference): the up to 1,000 rows keyed
   at most the pilot's last key, in key order: ``SketchSpec.from_pilot``'s rows.
3. profile: each Arrow batch is profiled by ``EmbeddingProfile.from_array`` (one implementation of
   moments, sample and sketches) and the batches merged; a partition then ships only the sampled
   rows that can be in the whole set's sample (``EmbeddingProfile.sample_up_to``), so a partial is
   ``16 dim²`` bytes of half moments plus the sketches' sums and maps (about 1.05 MB at dim 128 and
   the defaults), whatever ``sample_rows`` is, plus its share of the sample (docs/spark.md).

The driver receives the tree's last few partials (at most 5 up to 100,000 partitions), the merged
keys and the pilot's 1,000 rows, never a partition's rows. A NaN, infinite, null or wrong-width
vector, or a null id, fails the job naming the partition, the row within it and the row's id.

pyspark is imported only by callers that pass a DataFrame: nothing else in the package needs it.
"""

from __future__ import annotations

import math
import pickle
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Sequence, TypeVar

import numpy as np

from drift_decider.errors import InputError
from drift_decider.inputs.embeddings import (ID_KEYS, TOO_LARGE, VECTOR_KEYS, first_non_utf8, unmeasurable_rows,
                                             value_limit)
from drift_decider.measure.distribution import MeasureOptions, check_seed, compare, current_seed
from drift_decider.measure.profile import DEFAULT_CHUNK_ROWS, DEFAULT_SAMPLE_ROWS, EmbeddingProfile
from drift_decider.measure.report import EvidenceReport
from drift_decider.measure.row_keys import bottom_keys, row_keys
from drift_decider.measure.sketch import PILOT_ROWS, SketchSpec

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

ID, VECTOR = "id", "vector"
TREE_FAN_IN = 8          # partials merged per tree node; the driver merges the last ~TREE_FAN_IN
NO_LIMIT = np.iinfo(np.uint64).max
T = TypeVar("T")


def measure_dataframes(reference: "DataFrame | EmbeddingProfile", current: "DataFrame", *, seed: int = 0,
                       options: MeasureOptions | None = None, column: str | Sequence[str] | None = None,
                       id_column: str | None = None) -> EvidenceReport:
    """``measure()`` on DataFrames: both profiles built on Spark, the metrics on the driver from
    them; the same numbers as ``measure()`` on the same rows and ids."""
    opts, seed = options or MeasureOptions(), check_seed(seed)
    kwargs = dict(column=column, id_column=id_column, sample_rows=opts.sample_rows, chunk_rows=opts.chunk_rows)
    ref = reference if isinstance(reference, EmbeddingProfile) else profile_dataframe(
        reference, seed=seed, name="reference", **kwargs)
    cur = profile_dataframe(current, seed=current_seed(seed, ref), name="current",
                            sketch_spec=None if ref.sketch is None else ref.sketch.spec, **kwargs)
    return compare(ref, cur, seed=seed, options=opts)


def profile_dataframe(df: "DataFrame", *, seed: int, column: str | Sequence[str] | None = None,
                      id_column: str | None = None, sample_rows: int = DEFAULT_SAMPLE_ROWS,
                      sketch_spec: SketchSpec | Literal["auto"] | None = "auto",
                      chunk_rows: int = DEFAULT_CHUNK_ROWS, name: str = "embeddings") -> EmbeddingProfile:
    """The profile of ``df``'s vectors: ``column`` is an ``array<float|double>`` or ml ``vector``
    column, or a list of numeric columns (default: the conventional name, e.g. ``embedding``);
    ``id_column`` holds unique item ids (default: ``id``, ``ids``, ``item_id`` or ``query_id``)."""
    partials = partials_frame(df, seed=seed, column=column, id_column=id_column, sample_rows=sample_rows,
                              sketch_spec=sketch_spec, chunk_rows=chunk_rows, name=name)
    return tree_merge(partials, EmbeddingProfile.merge, pickle.loads)


def partials_frame(df: "DataFrame", *, seed: int, column: str | Sequence[str] | None = None,
                   id_column: str | None = None, sample_rows: int = DEFAULT_SAMPLE_ROWS,
                   sketch_spec: SketchSpec | Literal["auto"] | None = "auto",
                   chunk_rows: int = DEFAULT_CHUNK_ROWS, name: str = "embeddings") -> "DataFrame":
    """One row per non-empty partition: its partial profile, pickled (column ``partial``), lazily.
    Runs the keys pass (and the pilot pass for ``sketch_spec="auto"``) to know what to build."""
    frame = vectors_and_ids(df, column, id_column, name)
    first = frame.where(frame[VECTOR].isNotNull()).select(VECTOR).first()   # null rows are named in pass 3
    if first is None:
        raise InputError(f"{name}: no rows (empty embedding set)")
    dim = len(first[0])
    if dim == 0:
        raise InputError(f"{name}: rows have zero dimensions")
    keys = smallest_keys(frame, seed, max(sample_rows, PILOT_ROWS), name)
    if keys is None:
        raise InputError(f"{name}: no rows (empty embedding set)")
    if len(np.unique(keys)) < len(keys):
        raise InputError(f"{name}: ids are not unique (two rows share an id, so they share a sample key)")
    if isinstance(sketch_spec, str):
        pilot_last = keys[min(PILOT_ROWS, len(keys)) - 1]
        rows = partition_pass(dim, name, lambda ids, x: _rows_up_to(seed, int(pilot_last), ids, x), _concat_rows)
        pilot = tree_merge(frame.mapInArrow(rows, "part binary"), _concat_rows, pickle.loads)
        sketch_spec = SketchSpec.from_rows(pilot[1], seed=seed)
    elif sketch_spec is not None and sketch_spec.dim != dim:
        raise InputError(f"dimension mismatch: reference vectors have {sketch_spec.dim} dimensions, "
                         f"{name} vectors {dim}")
    sample_last = int(keys[sample_rows - 1]) if len(keys) >= sample_rows else int(NO_LIMIT)
    build = _partials(seed, sample_rows, sketch_spec, chunk_rows, sample_last, dim, name)
    return frame.mapInArrow(build, "partial binary")


def smallest_keys(frame: "DataFrame", seed: int, kept: int, name: str) -> np.ndarray | None:
    """The ``kept`` smallest id keys of ``frame`` (``vectors_and_ids``' columns), ascending, read from
    the id column alone; None when it has no rows."""
    return tree_merge(frame.select(ID).mapInArrow(_smallest_keys(seed, kept, name), "keys binary"),
                      lambda a, b: _merge_keys(a, b, kept), lambda data: np.frombuffer(data, np.uint64))


def vectors_and_ids(df: "DataFrame", column: str | Sequence[str] | None, id_column: str | None,
                     name: str) -> "DataFrame":
    """``df`` as two columns: ``id`` and ``vector`` (an array of numbers)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, BinaryType, NumericType, StringType

    fields = {f.name: f.dataType for f in df.schema.fields}
    ids = id_column or next((c for c in ID_KEYS if c in fields), None)
    if ids is None or ids not in fields:
        raise InputError(f"{name}: no id column{f' named {id_column!r}' if id_column else ''} among "
                         f"{sorted(fields)}: on Spark rows are sampled by their id (a row's position "
                         "depends on the partitioning); name the column of unique item ids")
    if not isinstance(fields[ids], (NumericType, StringType, BinaryType)):
        raise InputError(f"{name}: id column {ids!r} is {fields[ids].simpleString()}; expected integers or strings")
    if isinstance(column, str) or column is None:
        vectors = [c for c in fields if c != ids and isinstance(fields[c], (ArrayType, VectorUDT))]
        column = column or next((c for c in VECTOR_KEYS if c in vectors), vectors[0] if len(vectors) == 1 else None)
        if column is None or column not in fields:
            raise InputError(f"{name}: cannot tell which of {sorted(fields)} holds the vectors; name the column")
        kind = fields[column]
        if isinstance(kind, VectorUDT):
            vector = vector_to_array(F.col(column), "float64")
        elif isinstance(kind, ArrayType) and isinstance(kind.elementType, NumericType):
            vector = F.col(column)
        else:
            raise InputError(f"{name}: column {column!r} is {kind.simpleString()}, not an array of numbers "
                             "or an ml vector")
    else:
        missing = [c for c in column if c not in fields or not isinstance(fields[c], NumericType)]
        if missing or not column:
            raise InputError(f"{name}: {missing or 'no columns'} are not numeric columns of {sorted(fields)}")
        vector = F.array(*[F.col(c).cast("double") for c in column])
    return df.select(F.col(ids).alias(ID), vector.alias(VECTOR))


# -- the passes: functions run on the executors, over one partition's Arrow batches ---------------
def _smallest_keys(seed: int, kept: int, name: str) -> Callable[[Iterator["pa.RecordBatch"]], Iterator]:
    def run(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        best, offset = np.zeros(0, np.uint64), 0
        for batch in batches:
            ids = batch_ids(batch, offset, name)
            best = _merge_keys(best, row_keys(seed, ids), kept)
            offset += batch.num_rows
        if offset:
            yield one_value_batch("keys", best.tobytes())
    return run


def _rows_up_to(seed: int, last_key: int, ids: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One batch's keys and rows keyed at most ``last_key``."""
    keys = row_keys(seed, ids)
    keep = keys <= np.uint64(last_key)
    return keys[keep], x[keep].astype(np.float64)


def _partials(seed: int, sample_rows: int, spec: SketchSpec | None, chunk_rows: int, sample_last: int,
              dim: int, name: str) -> Callable:
    def run(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        profile, offset = None, 0
        for batch in batches:
            ids, x = batch_ids(batch, offset, name), batch_vectors(batch, offset, dim, name)
            part = EmbeddingProfile.from_array(x, seed=seed, ids=ids, sample_rows=sample_rows, sketch_spec=spec,
                                               chunk_rows=chunk_rows, workers=1, name=name)
            profile = part if profile is None else profile.merge(part)
            offset += batch.num_rows
        if profile is not None:
            yield one_value_batch("partial", pickle.dumps(profile.sample_up_to(sample_last)))
    return run


def partition_pass(dim: int, name: str, part_of: Callable[[np.ndarray, np.ndarray], T],
                   merge: Callable[..., T]) -> Callable[[Iterator["pa.RecordBatch"]], Iterator["pa.RecordBatch"]]:
    """A ``mapInArrow`` function (output column ``part binary``) that ships one value per partition:
    ``part_of(ids, vectors)`` of each validated Arrow batch, merged once by ``merge(*parts)``."""
    def run(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        parts, offset = [], 0
        for batch in batches:
            parts.append(part_of(batch_ids(batch, offset, name), batch_vectors(batch, offset, dim, name)))
            offset += batch.num_rows
        if parts:
            yield one_value_batch("part", pickle.dumps(merge(*parts)))
    return run


def batch_ids(batch: "pa.RecordBatch", offset: int, name: str) -> np.ndarray:
    """The batch's ids; binary ids as the UTF-8 text they hold, as the single-process reader keys them."""
    import pyarrow as pa

    column = batch.column(batch.schema.get_field_index(ID))
    if column.null_count:
        row = int(np.flatnonzero(np.asarray(column.is_null()))[0])
        raise InputError(f"{name}: {_where(offset + row)} has a null id")
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        try:
            column = column.cast(pa.string())
        except pa.ArrowInvalid:
            row = first_non_utf8(column.to_pylist())
            raise InputError(f"{name}: {_where(offset + row)} has a binary id that is not UTF-8 text "
                             f"({column[row].as_py()[:16]!r}); store ids as integers or text") from None
    return column.to_numpy(zero_copy_only=False)


def batch_vectors(batch: "pa.RecordBatch", offset: int, dim: int, name: str) -> np.ndarray:
    """The batch's vectors as an (n, dim) matrix; the first null, wrong-width or non-finite row fails
    the job with its partition, row and id."""
    column = batch.column(batch.schema.get_field_index(VECTOR))
    ids = batch.column(batch.schema.get_field_index(ID))
    lengths = np.asarray(column.value_lengths().fill_null(-1))
    bad = np.flatnonzero(lengths != dim)
    if len(bad):
        row = int(bad[0])
        what = "a null vector" if lengths[row] < 0 else f"{lengths[row]} dimensions, not {dim}"
        raise InputError(f"{name}: {_where(offset + row)} (id {ids[row].as_py()!r}) has {what}")
    x = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), dim)
    bad, huge = unmeasurable_rows(x)
    for mask, what in ((bad, "contains NaN or inf"), (huge, "holds " + TOO_LARGE % value_limit(dim))):
        if mask.any():
            row = int(np.argmax(mask))
            raise InputError(f"{name}: {_where(offset + row)} (id {ids[row].as_py()!r}) {what}")
    return x


def _where(row: int) -> str:
    from pyspark import TaskContext

    return f"partition {TaskContext.get().partitionId()}, row {row}"


def one_value_batch(field: str, value: bytes) -> "pa.RecordBatch":
    import pyarrow as pa

    return pa.RecordBatch.from_pydict({field: pa.array([value], pa.binary())})


# -- merging ------------------------------------------------------------------------------------
def _merge_keys(a: np.ndarray, b: np.ndarray, kept: int) -> np.ndarray:
    keys = np.concatenate([a, b])
    return keys[bottom_keys(keys, kept)]


def _concat_rows(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The keyed rows of all ``parts``, in key order."""
    keys, rows = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    order = np.argsort(keys, kind="stable")
    return keys[order], rows[order]


def tree_merge(partials: "DataFrame", merge: Callable[[T, T], T], load: Callable[[bytes], T]) -> T | None:
    """Merge one value per partition in a tree on the executors (fan-in TREE_FAN_IN), so the driver
    receives only the last level's few values; None when no partition had rows."""
    rdd = partials.rdd.map(lambda row: load(bytes(row[0])))
    depth = max(2, math.ceil(math.log(max(rdd.getNumPartitions(), 2)) / math.log(TREE_FAN_IN)))
    try:
        return rdd.treeReduce(merge, depth=depth)
    except ValueError as exc:       # treeReduce of no values
        if "empty" in str(exc).lower():
            return None
        raise
    except Exception as exc:       # noqa: BLE001 - a job failed: an InputError on an executor is the user's
        raise _input_error(exc) or exc


def _input_error(exc: Exception) -> InputError | None:
    """The InputError an executor raised, from the failed job's message (else None)."""
    marker = "drift_decider.errors.InputError: "
    text = str(exc)
    if marker not in text:
        return None
    return InputError(text[text.index(marker) + len(marker):].splitlines()[0])
