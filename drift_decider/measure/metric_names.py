"""The catalogue of metric keys the engine produces: the names policies may refer to.

One source of truth for metric names: the metric code, the policy validator (unknown names are
errors) and the docs all read this table. A ``.p_value`` key exists for every entry with
``test=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class MetricSpec:
    name: str
    description: str
    test: bool = False          # has a calibrated p-value, published as "<name>.p_value"
    family: str = "drift"       # drift | structure | index | scores | rankings | queries | data
    ideal: float | None = None  # the value when nothing changed; set for metrics with a noise floor


CATALOG: tuple[MetricSpec, ...] = (
    # -- distribution drift between reference and current embeddings (issue 3)
    MetricSpec("mean_shift.cosine", "cosine distance between the reference and current centroids "
               "(insufficient_data when a centroid is indistinguishable from 0)"),
    MetricSpec("mean_shift.euclidean", "euclidean distance between centroids over the reference's RMS "
               "distance to its centroid"),
    MetricSpec("mmd2", "squared MMD, Gaussian kernel, median-heuristic bandwidth", test=True),
    MetricSpec("mmd2_rff", "squared MMD over all rows from random Fourier feature means (Gaussian kernel, "
               "reference bandwidth), unbiased; p-value: Hotelling T-squared on the features", test=True),
    MetricSpec("domain_classifier.auc", "cross-validated ROC AUC of a classifier telling current from reference",
               test=True),
    MetricSpec("pc_drift_share", "share of reference principal components whose KS test rejects after "
               "Benjamini-Hochberg; p-value is the Bonferroni-corrected minimum", test=True),
    MetricSpec("sliced_wasserstein", "mean 1-D Wasserstein distance over random projections"),
    MetricSpec("sliced_wasserstein_sketch", "mean 1-D Wasserstein distance over random projections of all "
               "rows, from projection histograms (within one bin width)"),
    MetricSpec("pca_recon_ratio", "PCA reconstruction error of current over reference (PCA fit on one random "
               "half of the reference, scored on the other half and on current)"),
    MetricSpec("norm_ks", "KS statistic between L2-norm distributions", test=True),
    MetricSpec("norm_ratio", "mean L2 norm of current over reference"),
    # -- structure between two embedding sets with shared ids (issue 6); neighbourhoods are cosine k-NN
    MetricSpec("knn_jaccard", "mean Jaccard overlap of the k-NN of shared items, reference vs current "
               "(1 = unchanged; small noise lowers it)", family="structure", ideal=1.0),
    MetricSpec("knn_turnover", "share of current k-NN of shared items that were not among their 5k nearest "
               "in the reference (0 = unchanged; noise leaves it near 0)", family="structure", ideal=0.0),
    MetricSpec("procrustes.residual", "relative residual ||sAR - B||/||B|| after the best rotation+scale "
               "(0 for a pure rotation and scale)", family="structure", ideal=0.0),
    MetricSpec("procrustes.scale", "scale factor s of the best rotation+scale alignment (1 = unchanged)",
               family="structure", ideal=1.0),
    MetricSpec("procrustes.moved_share", "share of shared items whose direction still moved more than "
               "0.1 cosine distance after the best rotation: change alignment cannot fix", family="structure",
               ideal=0.0),
    MetricSpec("movement.cosine_p50", "median cosine distance each shared item moved, without alignment",
               family="structure", ideal=0.0),
    MetricSpec("movement.cosine_p90", "90th percentile of cosine distance each shared item moved, without "
               "alignment", family="structure", ideal=0.0),
    MetricSpec("catalog.new_item_share", "share of the current catalogue whose ids the version never learned "
               "(cold-start items for a model with one embedding per id)", family="structure"),
    # -- ANN index health (issue 6)
    MetricSpec("index.recall_at_k", "recall@k of the serving index against exact search on the current "
               "catalogue", family="index"),
    MetricSpec("index.coverage", "share of current catalogue items present in the index", family="index"),
    MetricSpec("index.stale_share", "share of indexed catalogue items whose vector moved more than epsilon "
               "(relative) since the build", family="index"),
    MetricSpec("index.age_days", "days from the index build to the window end (negative: built after it)",
               family="index"),
    # -- similarity-score calibration (issue 6)
    MetricSpec("scores.ks", "KS statistic between reference and current top-k similarity scores "
               "(p-value counts each query once)", test=True, family="scores", ideal=0.0),
    MetricSpec("scores.mean_shift", "relative shift |mean_cur - mean_ref| / |mean_ref| of the mean top-k "
               "similarity score of today's queries (moves with the user population too)", family="scores", ideal=0.0),
    # -- what users get: fixed reference queries against the items, before and after a cheap fix (issue 13)
    MetricSpec("rank.overlap", "mean share of a fixed reference query's top-k (reference items) still in its "
               "top-k over the current items", family="rankings", ideal=1.0),
    MetricSpec("rank.overlap_fixed", "rank.overlap after the cheap fix (one rotation, one power law on norms) maps "
               "the current items back: what no recalibration restores", family="rankings", ideal=1.0),
    MetricSpec("rank.fix_gain", "rank.overlap_fixed - rank.overlap: how much of the ranking the cheap fix restores",
               family="rankings", ideal=0.0),
    MetricSpec("rank.score_shift", "relative shift of the mean top-k score of the fixed reference queries "
               "(rankings may stay: a calibration signal)", family="rankings", ideal=0.0),
    MetricSpec("queries.off_catalog_share", "share of current queries whose best cosine match in the catalogue is "
               "below the reference queries' 5th percentile (about 0.05 when nothing moved)", family="queries",
               ideal=0.05),
    # -- what the version has not seen: told by the check, not measured (issue 13)
    MetricSpec("data.growth", "training interactions that arrived after the version's training cutoff, as a share "
               "of those it was trained on (check --data-growth): what a retrain now would add", family="data"),
)


NOISE_COMPANIONS = (".noise_units", ".noise_floor")  # published beside a metric when a noise floor exists
_IDEAL = {spec.name: spec.ideal for spec in CATALOG if spec.ideal is not None}
_FAMILY = {spec.name: spec.family for spec in CATALOG}
_SPEC = {spec.name: spec for spec in CATALOG}


def spec_of(name: str) -> MetricSpec:
    """The catalogue row of a metric (of the metric beside which a noise companion is published); a
    name missing from the catalogue is a bug in the metric code."""
    for suffix in NOISE_COMPANIONS:
        if name.endswith(suffix) and name[:-len(suffix)] in _IDEAL:
            name = name[:-len(suffix)]
    try:
        return _SPEC[name]
    except KeyError:
        raise ValueError(f"metric {name!r} is not in the catalogue (drift_decider/measure/metric_names.py): "
                         "add a row there when you add a metric") from None


def family_of(name: str) -> str:
    """The family a metric belongs to (drift, structure, rankings, queries, scores, index, data)."""
    return _FAMILY[name]


def ideal_value(name: str) -> float | None:
    """The metric's value when nothing changed, or None for metrics without a noise floor."""
    return _IDEAL.get(name)


@cache
def metric_keys() -> frozenset[str]:
    """Every key a policy may name: metric names, their ``.p_value`` companions and, for metrics with a
    no-change value, their noise-floor companions (drift_decider.evidence.noise_floor). Built once: the
    catalogue is a constant, and every metric name a policy or metrics file holds is checked against it."""
    keys = {spec.name for spec in CATALOG}
    keys |= {f"{spec.name}.p_value" for spec in CATALOG if spec.test}
    keys |= {name + suffix for name in _IDEAL for suffix in NOISE_COMPANIONS}
    return frozenset(keys)
