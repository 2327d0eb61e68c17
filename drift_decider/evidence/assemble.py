"""Assemble one check's evidence: distribution drift always, structure/ranking/index/score metrics when
their inputs exist, and each noise-sensitive metric beside the model's own refit noise when the
reference has a noise floor. This is where "drift detected" becomes evidence that can tell the
repairs apart.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable

import numpy as np

from drift_decider.inputs.serving_index import ServingIndex
from drift_decider.measure.metric_names import family_of
from drift_decider.errors import InputError
from drift_decider.measure.report import EvidenceReport
from drift_decider.inputs.embeddings import EmbeddingSet
from drift_decider.measure.distribution import measure
from drift_decider.measure.metrics.index_health import index_health_metrics
from drift_decider.measure.metrics.rankings import query_coverage, ranking_metrics
from drift_decider.measure.metrics.result import MetricResult
from drift_decider.measure.metrics.sampling import seeded_rows
from drift_decider.measure.metrics.scores import score_metrics
from drift_decider.measure.metrics.structure import (check_id_kinds, new_item_share, procrustes_fit, shared_rows,
                                             structure_metrics)
from drift_decider.evidence.noise_floor import NoiseFloor, Sibling
from drift_decider.measure.profile import EmbeddingProfile
from drift_decider.measure.row_keys import bottom_keys, row_keys

ITEM_SAMPLE_ROWS = 100_000   # id-keyed reference items kept per version (structure and score metrics)
QUERY_SAMPLE_ROWS = 10_000   # reference queries kept per version (score metrics)


@dataclass(frozen=True)
class ReferenceData:
    """What a model version keeps of its reference: a profile, id-keyed items and queries if given, every
    item id it learned, and the noise floor measured on sibling refits."""

    profile: EmbeddingProfile
    item_ids: np.ndarray | None = None
    item_vectors: np.ndarray | None = None
    queries: np.ndarray | None = None
    noise: NoiseFloor | None = None
    known_ids: np.ndarray | None = None   # sorted: the whole catalogue the version learned, not a sample

    @property
    def learned_ids(self) -> np.ndarray | None:
        """Every id the version learned: known_ids, or the item sample when it holds the whole catalogue
        (references stored before known_ids)."""
        if self.known_ids is not None:
            return self.known_ids
        if self.item_ids is not None and len(self.item_ids) < ITEM_SAMPLE_ROWS:
            return self.item_ids
        return None

    @classmethod
    def from_arrays(cls, vectors: np.ndarray, ids: np.ndarray | None = None, queries: np.ndarray | None = None,
                    *, seed: int = 0, progress: bool = False) -> "ReferenceData":
        """Summarise a version's embeddings: the profile over every row, seeded samples of the items
        (by id) and queries that the paired metrics read."""
        if ids is not None:
            ids = np.asarray(ids)
            if ids.dtype.kind == "O":       # text ids read from parquet: stored as str, never pickled
                ids = ids.astype(str)
        reference = cls(EmbeddingProfile.from_array(vectors, seed=seed, progress=progress, ids=ids))
        if ids is not None:
            rows = item_sample_rows(ids, seed)
            reference = replace(reference, item_ids=np.asarray(ids)[rows], known_ids=np.unique(ids),
                                item_vectors=np.asarray(vectors[rows], dtype=np.float32))
        if queries is not None:
            rows = seeded_rows(len(queries), QUERY_SAMPLE_ROWS, seed)
            reference = replace(reference, queries=np.asarray(queries[rows], dtype=np.float32))
        return reference


def item_sample_rows(ids: np.ndarray, seed: int) -> np.ndarray:
    """Positions of a reference's item sample, in file order: every row of a catalogue of at most
    ITEM_SAMPLE_ROWS, else the rows of the ITEM_SAMPLE_ROWS smallest id keys, so that a table read on
    Spark, however partitioned, keeps the same items (evidence.spark_reference.reference_table)."""
    if len(ids) <= ITEM_SAMPLE_ROWS:
        return np.arange(len(ids))
    return np.sort(bottom_keys(row_keys(seed, ids), ITEM_SAMPLE_ROWS))


@dataclass(frozen=True)
class CurrentData:
    """One window: embeddings to test, the item catalogue (defaults to them if they carry ids),
    today's query sample, the serving index, and the data growth the team reports (``data.growth``:
    no embedding metric can see that the version has learned from too little of today's data)."""

    embeddings: EmbeddingSet
    catalog: EmbeddingSet | None = None
    queries: EmbeddingSet | None = None
    index: ServingIndex | None = None
    data_growth: float | None = None

    def __post_init__(self) -> None:
        require_data_growth(self.data_growth)
        if self.catalog is not None and self.catalog.ids is None:     # it exists to be paired by id
            raise InputError(f"{self.catalog.path}: a catalogue needs item ids (.npz with `ids`, or a parquet "
                             f"id column)")

    @property
    def items(self) -> EmbeddingSet | None:
        if self.catalog is not None:
            return self.catalog
        return self.embeddings if self.embeddings.ids is not None else None


def require_data_growth(growth: float | None) -> None:
    """Refuse a data growth that is not a share >= 0, before a check reads anything else."""
    if growth is None:
        return
    try:
        value = float(growth) if isinstance(growth, numbers.Real) and not isinstance(growth, bool) else math.nan
    except OverflowError:          # an int beyond float's range
        value = math.inf
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"--data-growth {growth!r}: give the interactions that arrived since the version's "
                         f"training cutoff as a share of those it was trained on, a number >= 0 (0.3 = 30 % more)")


# Below this share of today's ids that the version learned, pairing by id reads another catalogue: a
# different id column, or ids renumbered. A catalogue that is really half new needs a retrain whatever
# the paired metrics say (the new-item share says so past a fifth), and the user who knows that is the
# case opts out (``allow_id_mismatch``, `check --allow-id-mismatch`).
MIN_SHARED_IDS = 0.5


def build_evidence(reference: ReferenceData, current: CurrentData, *, seed: int = 0, now: datetime | None = None,
                   progress: bool = False, allow_id_mismatch: bool = False) -> EvidenceReport:
    """Every metric one check's inputs allow: distribution drift always; paired metrics (and their noise
    companions) with reference and current ids; the new-item share; index health with an index. The
    families that could not be measured are named, with why, in ``inputs["not_measured"]`` ("none"
    when every family was)."""
    items = current.items
    tally = None if items is None else CatalogTally.of(items.ids, reference.learned_ids, reference.known_ids,
                                                       str(items.path))
    return assemble_evidence(reference, current, tally, lambda: measure(
        reference.profile, current.embeddings.vectors, seed=seed, progress=progress,
        current_ids=current.embeddings.ids), seed=seed, now=now, allow_id_mismatch=allow_id_mismatch)


@dataclass(frozen=True)
class CatalogTally:
    """What the id checks read of a catalogue's ids, counted where the ids are (here, or on Spark's
    executors, which never send the ids): the id refusal and the new-item share need counts, not ids."""

    rows: int
    learned: int | None             # rows whose id the version learned (``learned_ids``); None: not known
    known: int | None               # rows whose id is among ``known_ids``; None without them
    unlearned: np.ndarray           # up to 3 ids the version did not learn, for the refusal's message

    @classmethod
    def of(cls, ids: np.ndarray, learned_ids: np.ndarray | None, known_ids: np.ndarray | None,
           where: str | None = None) -> "CatalogTally":
        """Count ``ids`` (a whole catalogue's, or one part's: parts add up with ``merge``; ``where`` names
        their file) against a version's ``learned_ids`` and ``known_ids``."""
        ids = np.asarray(ids)
        if learned_ids is not None:
            check_id_kinds(learned_ids, ids, where)
        learned = None if learned_ids is None else np.isin(ids, learned_ids)
        return cls(len(ids), None if learned is None else int(learned.sum()),
                   None if known_ids is None else int(np.isin(ids, known_ids).sum()),
                   ids[:0] if learned is None else ids[~learned][:3])

    def merge(self, other: "CatalogTally") -> "CatalogTally":
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else a + b
        return CatalogTally(self.rows + other.rows, add(self.learned, other.learned), add(self.known, other.known),
                            np.concatenate([self.unlearned, other.unlearned])[:3])


def assemble_evidence(reference: ReferenceData, current: CurrentData, tally: CatalogTally | None,
                      drift: Callable[[], EvidenceReport], *, seed: int = 0, now: datetime | None = None,
                      allow_id_mismatch: bool = False) -> EvidenceReport:
    """``build_evidence`` once the catalogue's ids are tallied (``tally``), with the distribution report
    from ``drift``. The paired metrics read only the items both sides share, so ``current.items`` may
    hold just the catalogue's rows among the reference's item sample (what the Spark engine collects)."""
    items = current.items
    learned = reference.learned_ids
    if tally is not None and learned is not None and not allow_id_mismatch:
        require_known_ids(learned, tally, MIN_SHARED_IDS, str(items.path))
    report = drift()
    queries = current.queries.vectors if current.queries is not None else None
    families = ["drift"]
    if items is not None and reference.item_ids is not None:
        paired = paired_metrics(reference, items.ids, items.vectors, queries, seed=seed)
        report.results.extend(paired)
        families.extend(sorted({family_of(r.name) for r in paired}))
        if reference.noise is not None:
            report.results.extend(reference.noise.companions(paired))
    if tally is not None and tally.known is not None:
        report.results.append(new_item_share(tally.rows, tally.rows - tally.known, len(reference.known_ids)))
    report.inputs["noise_floor"] = reference.noise.label if reference.noise is not None else "none"
    if items is not None and current.index is not None:
        report.results.extend(index_health_metrics(items.ids, items.vectors, current.index, queries=queries,
                                                   now=now, seed=seed))
        families.append("index")
    if current.data_growth is not None:
        report.results.append(MetricResult("data.growth", float(current.data_growth),
                                           detail={"source": "--data-growth"}))
        families.append("data")
    report.inputs["families"] = ",".join(families)
    report.inputs["not_measured"] = "; ".join(f"{family}: {why}" for family, why in
                                              not_measured(reference, current).items()) or "none"
    return report


def require_known_ids(learned_ids: np.ndarray, tally: CatalogTally, min_share: float, source: str) -> None:
    """Refuse a window whose ids the version mostly never learned (MIN_SHARED_IDS), naming examples of
    each side: the paired metrics would read another catalogue."""
    share = tally.learned / tally.rows if tally.rows else 1.0
    if share < min_share:
        raise InputError(f"{source}: {share:.1%} of its ids are items the version learned (at least {min_share:.0%} "
                         f"expected): the reference has e.g. {', '.join(map(repr, learned_ids[:3].tolist()))}, "
                         f"this window e.g. {', '.join(map(repr, tally.unlearned.tolist()))}. Same id "
                         f"column on both sides? If the catalogue really changed this much, the version needs a "
                         f"retrain; to check it anyway, pass --allow-id-mismatch")


def not_measured(reference: ReferenceData, current: CurrentData) -> dict[str, str]:
    """Each evidence family a check could not measure, and the input that would enable it: a decision
    that saw no rankings is not a decision that rankings held."""
    missing: dict[str, str] = {}
    paired = ("structure", "rankings", "queries", "scores")
    if current.items is None:
        missing.update(dict.fromkeys(paired, "this window's items have no ids (give --catalog, or --current with ids)"))
    elif reference.item_ids is None:
        missing.update(dict.fromkeys(paired, "the reference has no item sample (`reference set` from a file "
                                             "with ids)"))
    elif reference.queries is None:
        missing.update(dict.fromkeys(paired[1:], "the reference has no queries (`reference set --queries`)"))
    elif current.queries is None:
        missing.update(dict.fromkeys(paired[2:], "no queries for this window (--queries)"))
    if current.index is None:
        missing["index"] = "no serving index (--index)"
    elif current.items is None:
        missing["index"] = missing["structure"]
    if current.data_growth is None:
        missing["data"] = "no data growth since the version's training cutoff was given (check --data-growth)"
    if reference.noise is None:
        missing["noise floor"] = ("no refits to judge noise by (`reference set --replace --sibling`, or "
                                  "`reference noise`)")
    return missing


def paired_metrics(reference: ReferenceData, ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray | None, *,
                   seed: int = 0) -> list[MetricResult]:
    """Every metric that pairs items by id with the reference's: structure, rankings of the fixed reference
    queries, query coverage and today's scores. The same assembly measures checks and sibling refits."""
    vectors = np.asarray(vectors)
    results = structure_metrics(reference.item_vectors, reference.item_ids, vectors, ids, seed=seed)
    if reference.queries is None or reference.item_vectors.shape[1] != vectors.shape[1]:
        return results
    ref_rows, cur_rows = shared_rows(reference.item_ids, ids)
    ref_items, cur_items = reference.item_vectors[ref_rows], vectors[cur_rows]
    results.extend(ranking_metrics(ref_items, cur_items, reference.queries, seed=seed))
    if queries is not None:
        # best matches among as many items as the reference sample holds: a larger catalogue always has closer ones
        catalog = vectors[seeded_rows(len(vectors), len(reference.item_vectors), seed)]
        results.append(query_coverage(reference.item_vectors, reference.queries, catalog, queries, seed=seed))
        # the same items on both sides, so top-k scores compare like with like
        results.extend(score_metrics(ref_items, cur_items, reference.queries, queries, seed=seed))
    return results


def measure_noise(reference: ReferenceData, siblings: list[Sibling], *, seed: int = 0) -> NoiseFloor:
    """The noise floor of every paired metric, from refits that saw no new data.

    A refit's basis is arbitrary (another seed rotates an SVD or a two-tower model freely), so each
    sibling is first aligned onto the reference by the best rotation and scale over the ids they
    share, its queries by the same rotation and the inverse scale (so every inner-product score of the
    sibling stays what it was): the floor is the noise alignment cannot remove, and a current window
    delivered in a new basis still shows as a change a recalibration repairs.
    """
    if reference.item_ids is None:
        raise InputError("a noise floor needs reference embeddings with ids (siblings are paired by id)")
    measured = []
    for number, sibling in enumerate(siblings, 1):
        if np.shape(sibling.vectors)[1:] != reference.item_vectors.shape[1:]:
            raise InputError(f"sibling {number} has {np.shape(sibling.vectors)[1:]} dimensions, the reference "
                             f"{reference.item_vectors.shape[1]}")
        if not np.isfinite(sibling.vectors).all() or (sibling.queries is not None
                                                      and not np.isfinite(sibling.queries).all()):
            raise InputError(f"sibling {number} contains NaN or infinite values")
        ref_rows, sib_rows = shared_rows(reference.item_ids, sibling.ids)
        if len(ref_rows) < 2 * reference.item_vectors.shape[1]:
            raise InputError(f"sibling {number} shares {len(ref_rows)} ids with the reference; a noise floor "
                             f"needs at least {2 * reference.item_vectors.shape[1]}")
        sib = np.asarray(sibling.vectors, dtype=np.float64)
        rotation, scale = procrustes_fit(sib[sib_rows], np.asarray(reference.item_vectors[ref_rows], np.float64))
        queries = reference.queries if sibling.queries is None else np.asarray(sibling.queries) @ rotation / scale
        values: dict[str, float] = {}
        for result in paired_metrics(reference, sibling.ids, (sib @ rotation) * scale, queries, seed=seed):
            values.update(result.flat())
        measured.append(values)
    return NoiseFloor.from_measurements("siblings", measured)
