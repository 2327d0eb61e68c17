"""A version's reference read on Spark (`reference set --engine spark`): what a local file with ids
gives, with only the profile's partials, the item sample and the ids reaching the driver.

- The profile: ``profile_dataframe``, as `measure --engine spark` builds it.
- The item sample: the rows of the ``ITEM_SAMPLE_ROWS`` smallest id keys, which are the rows
  ``item_sample_rows`` picks from a local file (every row of a smaller catalogue), found by a keys
  pass and collected by a second pass that also unites each partition's ids (the catalogue the
  version learned, which the new-item share reads).
- The noise floor, from sibling refits' tables: of each, only the rows in the item sample
  (``catalogue_sample``), which are all that the floor's metrics pair by id.

pyspark is imported only by callers that pass a DataFrame.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

import numpy as np

from drift_decider.errors import InputError
from drift_decider.evidence.assemble import ITEM_SAMPLE_ROWS, ReferenceData, measure_noise
from drift_decider.evidence.noise_floor import Sibling
from drift_decider.evidence.spark_check import catalogue_sample
from drift_decider.measure.distribution import require_window_rows
from drift_decider.measure.row_keys import row_keys
from drift_decider.measure.spark_profile import (NO_LIMIT, partition_pass, profile_dataframe, smallest_keys,
                                                 tree_merge, vectors_and_ids)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def reference_table(df: "DataFrame", *, seed: int, name: str,
                    siblings: Sequence[tuple["DataFrame", str]] = ()) -> ReferenceData:
    """What ``ReferenceData.from_arrays`` keeps of a file with ids, from a table on Spark: the profile,
    the item sample (the rows ``item_sample_rows`` picks, by their id keys, sorted by id) and every id
    the version learned. ``siblings`` (tables of refits, each with its name) give the noise floor; of
    each, only the rows in the item sample reach the driver, which are all the floor pairs by id."""
    profile = profile_dataframe(df, seed=seed, name=name)
    require_window_rows(profile.count, name, "a reference")
    frame = vectors_and_ids(df, None, None, name)
    keys = smallest_keys(frame, seed, ITEM_SAMPLE_ROWS, name)
    last = int(keys[-1]) if len(keys) >= ITEM_SAMPLE_ROWS else int(NO_LIMIT)
    part = partition_pass(profile.dim, name, lambda ids, x: _sample_and_ids(seed, last, ids, x), _merge_samples)
    ids, vectors, known = tree_merge(frame.mapInArrow(part, "part binary"), _merge_samples, pickle.loads)
    if len(known) != profile.count:      # the profile checks only the ids of its sample keys
        raise InputError(f"{name}: ids are not unique ({profile.count - len(known)} row(s) repeat an id: each item "
                         f"must appear once)")
    # text ids as a local file's are kept, each array as wide as its own longest id
    ids, known = (a.astype(str) if a.dtype.kind == "O" else a for a in (ids, known))
    order = np.argsort(ids, kind="stable")
    reference = ReferenceData(profile, item_ids=ids[order], item_vectors=vectors[order], known_ids=known)
    if not siblings:
        return reference
    samples = [catalogue_sample(table, reference, name=table_name)[1] for table, table_name in siblings]
    return replace(reference, noise=measure_noise(reference, [Sibling(items.ids, items.vectors) for items in samples],
                                                  seed=seed))


Sample = tuple[np.ndarray, np.ndarray, np.ndarray]      # the sampled rows' ids and vectors, and every id


def _sample_and_ids(seed: int, last_key: int, ids: np.ndarray, x: np.ndarray) -> Sample:
    """One batch's rows keyed at most ``last_key`` (as float32, as a local reference keeps them), and its ids."""
    keep = row_keys(seed, ids) <= np.uint64(last_key)
    return ids[keep], x[keep].astype(np.float32), np.unique(ids)


def _merge_samples(*parts: Sample) -> Sample:
    """One sample of the rows of all ``parts``: sampled rows concatenated once, ids united in one sort
    (not a union per part, which re-sorts the growing set once per batch)."""
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.unique(np.concatenate([p[2] for p in parts])))
