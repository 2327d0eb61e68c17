"""A check's window read on Spark (`check --engine spark`): the same evidence as ``build_evidence`` on
the same rows, with only summaries and the reference's item sample reaching the driver.

- Distribution drift: the current table's profile (``profile_dataframe``, as `measure --engine
  spark`) against the reference's stored profile.
- Per-item metrics: one pass over the catalogue (``--catalog``, else the current table) tallies its
  ids against the version's learned and known ids (``CatalogTally``, merged in a tree) and keeps only
  the rows whose id is in the reference's item sample (at most ``ITEM_SAMPLE_ROWS``). Those rows are
  all the paired metrics read (they pair by id), so ``assemble_evidence`` runs on them unchanged.
- The window's digest comes from what is the same however the rows are partitioned or ordered: the
  row count, the profile's sample (keys and float32 rows, picked by id) and the catalogue's tally
  and collected rows, sorted by id.

pyspark is imported only by callers that pass a DataFrame.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from drift_decider.errors import InputError
from drift_decider.evidence.assemble import CatalogTally, CurrentData, ReferenceData, assemble_evidence
from drift_decider.inputs.embeddings import EmbeddingSet
from drift_decider.measure.distribution import compare, current_seed, require_window_rows
from drift_decider.measure.profile import EmbeddingProfile
from drift_decider.measure.report import EvidenceReport
from drift_decider.measure.spark_profile import partition_pass, profile_dataframe, tree_merge, vectors_and_ids

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class SparkWindow:
    """One window measured on Spark: its evidence and the digest that names its data."""

    evidence: EvidenceReport
    digest: str


def check_tables(reference: ReferenceData, current: "DataFrame", catalog: "DataFrame | None", *, source: str,
                 catalog_source: str | None = None, seed: int = 0, allow_id_mismatch: bool = False,
                 data_growth: float | None = None) -> SparkWindow:
    """The evidence of a window whose current (and catalogue) tables Spark reads, decided as
    ``build_evidence`` decides it: the catalogue's id refusal comes before the profile's passes."""
    tally, items = catalogue_sample(catalog if catalog is not None else current, reference,
                                    name=catalog_source or source)
    spec = None if reference.profile.sketch is None else reference.profile.sketch.spec
    profile = profile_dataframe(current, seed=current_seed(seed, reference.profile), sketch_spec=spec, name=source)
    if profile.dim != reference.profile.dim:
        raise InputError(f"{source}: dimension mismatch: the reference has {reference.profile.dim} dimensions, "
                         f"this window {profile.dim}")
    require_window_rows(profile.count, source)
    evidence = assemble_evidence(reference, CurrentData(items, data_growth=data_growth), tally,
                                 lambda: compare(reference.profile, profile, seed=seed), seed=seed,
                                 allow_id_mismatch=allow_id_mismatch)
    return SparkWindow(evidence, window_digest(profile, tally, items))


def catalogue_sample(df: "DataFrame", reference: ReferenceData, *, name: str) -> tuple[CatalogTally, EmbeddingSet]:
    """One pass over a catalogue table: its ids tallied against the version's, and its rows whose id is
    in the reference's item sample, sorted by id (the driver receives at most that sample's rows).
    Every row's vector is validated, as the local reader validates the whole file."""
    frame = vectors_and_ids(df, None, None, name)
    sample_ids = reference.item_ids if reference.item_ids is not None else np.zeros(0, np.int64)
    shared = frame.sparkSession.sparkContext.broadcast((sample_ids, reference.learned_ids, reference.known_ids))
    part = partition_pass(reference.profile.dim, name, lambda ids, x: _tally_and_rows(shared.value, ids, x, name),
                          _merge_parts)
    merged = tree_merge(frame.mapInArrow(part, "part binary"), _merge_parts, pickle.loads)
    shared.unpersist()
    if merged is None:
        raise InputError(f"{name}: no rows (empty embedding set)")
    tally, ids, vectors = merged
    order = np.argsort(ids, kind="stable")
    return tally, EmbeddingSet(Path(name), vectors[order], ids[order])


Part = tuple[CatalogTally, np.ndarray, np.ndarray]


def _tally_and_rows(shared: tuple[np.ndarray, ...], ids: np.ndarray, x: np.ndarray, name: str) -> Part:
    """One batch's ids tallied against the version's, and its rows in the reference's item sample."""
    sample_ids, learned_ids, known_ids = shared
    keep = np.isin(ids, sample_ids)
    return CatalogTally.of(ids, learned_ids, known_ids, name), ids[keep], x[keep]


def _merge_parts(*parts: Part) -> Part:
    """One part of the rows of all ``parts``: tallies merged, kept rows concatenated once."""
    tally = parts[0][0]
    for part in parts[1:]:
        tally = tally.merge(part[0])
    return tally, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


def window_digest(profile: EmbeddingProfile, tally: CatalogTally, items: EmbeddingSet) -> str:
    """A digest of a window's data that no partitioning or row order changes: the row count, the
    profile's id-keyed sample (keys and rows) and the catalogue's tally and rows in the reference's
    item sample. Like the local strided digest it reads a sample, not every byte (docs/spark.md)."""
    digest = hashlib.sha256(f"spark|{profile.count}|{profile.dim}|{tally.rows}|{tally.learned}|{tally.known}".encode())
    for part in (profile.sample_keys, profile.sample, items.vectors):
        digest.update(np.ascontiguousarray(part).tobytes())
    digest.update("|".join(map(str, items.ids.tolist())).encode())
    return digest.hexdigest()[:16]
