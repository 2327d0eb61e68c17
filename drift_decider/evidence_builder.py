"""Assemble one check's evidence: distribution drift always, structure/index/score metrics when their
inputs exist. This is where "drift detected" becomes evidence that can tell the repairs apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from drift_decider.ann_index import ServingIndex
from drift_decider.evidence import EvidenceReport
from drift_decider.loading import EmbeddingSet
from drift_decider.measure import measure
from drift_decider.metrics.index_health import index_health_metrics
from drift_decider.metrics.scores import score_metrics
from drift_decider.metrics.structure import shared_rows, structure_metrics
from drift_decider.profile import EmbeddingProfile

ITEM_SAMPLE_ROWS = 100_000   # id-keyed reference items kept per version (structure and score metrics)
QUERY_SAMPLE_ROWS = 10_000   # reference queries kept per version (score metrics)


@dataclass(frozen=True)
class ReferenceData:
    """What a model version keeps of its reference: a profile, and id-keyed items and queries if given."""

    profile: EmbeddingProfile
    item_ids: np.ndarray | None = None
    item_vectors: np.ndarray | None = None
    queries: np.ndarray | None = None


@dataclass(frozen=True)
class CurrentData:
    """One window: embeddings to test, the item catalogue (defaults to them if they carry ids),
    today's query sample and the serving index."""

    embeddings: EmbeddingSet
    catalog: EmbeddingSet | None = None
    queries: EmbeddingSet | None = None
    index: ServingIndex | None = None

    @property
    def items(self) -> EmbeddingSet | None:
        if self.catalog is not None:
            return self.catalog
        return self.embeddings if self.embeddings.ids is not None else None


def seeded_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """A sorted seeded sample of at most ``limit`` row numbers out of ``n``."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def build_evidence(reference: ReferenceData, current: CurrentData, *, seed: int = 0, now: datetime | None = None,
                   progress: bool = False) -> EvidenceReport:
    report = measure(reference.profile, current.embeddings.vectors, seed=seed, progress=progress)
    items = current.items
    families = ["drift"]
    if items is not None and reference.item_ids is not None:
        report.results.extend(structure_metrics(reference.item_vectors, reference.item_ids, items.vectors,
                                                items.ids, seed=seed))
        families.append("structure")
        if reference.queries is not None and current.queries is not None:
            # the same items on both sides, so top-k scores compare like with like
            ref_rows, cur_rows = shared_rows(reference.item_ids, items.ids)
            report.results.extend(score_metrics(reference.item_vectors[ref_rows], np.asarray(items.vectors)[cur_rows],
                                                reference.queries, current.queries.vectors, seed=seed))
            families.append("scores")
    if items is not None and current.index is not None:
        queries = current.queries.vectors if current.queries is not None else None
        report.results.extend(index_health_metrics(items.ids, items.vectors, current.index, queries=queries,
                                                   now=now, seed=seed))
        families.append("index")
    report.inputs["families"] = ",".join(families)
    return report
