"""measure(): every distribution-drift metric between a reference and a current set of embeddings.

Both sides are first summarised into EmbeddingProfiles (chunked, bounded memory). Metrics that
need only moments use all rows exactly; tests that need rows use the profiles' uniform samples,
which keeps their p-values valid (a uniform subsample of an i.i.d. sample is an i.i.d. sample);
the sketch metrics see all rows through the profiles' random-feature and projection sketches.
Every result states the rows it used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from drift_decider.measure.merge_moments import combine_moments
from drift_decider.errors import InputError
from drift_decider.measure.report import EvidenceReport
from drift_decider.measure.metrics.classifier import domain_classifier
from drift_decider.measure.metrics.mmd import mmd2_test
from drift_decider.measure.metrics.moments import mean_shift, norm_ratio, pca_recon_ratio
from drift_decider.measure.metrics.norms import norm_ks
from drift_decider.measure.metrics.pc_ks import pc_drift, principal_axes
from drift_decider.measure.metrics.result import MetricResult
from drift_decider.measure.metrics.sketched import mmd2_rff, sliced_wasserstein_sketch
from drift_decider.measure.metrics.sliced import sliced_wasserstein
from drift_decider.measure.profile import DEFAULT_CHUNK_ROWS, DEFAULT_SAMPLE_ROWS, EmbeddingProfile

TESTS = ("mmd2", "mmd2_rff", "domain_classifier.auc", "pc_drift_share", "norm_ks")


@dataclass(frozen=True)
class MeasureOptions:
    """Sizes and knobs of the engine. Defaults keep a 5,000 x 64 check around a second."""

    sample_rows: int = DEFAULT_SAMPLE_ROWS    # rows kept per side for the row-based tests
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    mmd_rows: int = 2_000                     # per side; the kernel matrix is (2 * mmd_rows)^2 float32
    mmd_permutations: int = 200
    classifier_rows: int = 2_000              # per side
    pc_components: int = 10
    sliced_projections: int = 64
    recon_variance: float = 0.9
    alpha: float = 0.05                       # Benjamini-Hochberg level of pc_drift_share
    min_rows: int = 10                        # per side, below which a test says insufficient_data

    def __post_init__(self) -> None:
        for name in ("sample_rows", "chunk_rows", "mmd_rows", "mmd_permutations", "classifier_rows",
                     "pc_components", "sliced_projections"):
            if getattr(self, name) < 1:
                raise InputError(f"MeasureOptions.{name} must be at least 1, got {getattr(self, name)}")
        if self.min_rows < 2:
            raise InputError(f"MeasureOptions.min_rows must be at least 2, got {self.min_rows}")
        if not (0.0 < self.recon_variance < 1.0 and 0.0 < self.alpha < 1.0):
            raise InputError("MeasureOptions.recon_variance and alpha must lie strictly between 0 and 1")


MIN_WINDOW_ROWS = MeasureOptions.min_rows


def require_window_rows(rows: int, where: str, what: str = "a window") -> None:
    """Refuse a window (or a reference) a decision cannot rest on: below MeasureOptions.min_rows rows
    (10; the domain classifier needs as many to hold five out per side) every drift test reports
    insufficient_data, and a one-row window was decided `none` on the few moment metrics left: the
    check failed open."""
    if rows < MIN_WINDOW_ROWS:
        raise InputError(f"{where}: {rows} row(s); {what} needs at least {MIN_WINDOW_ROWS} (the drift tests "
                         f"need {MIN_WINDOW_ROWS} rows per side)")


def measure(reference: EmbeddingProfile | np.ndarray, current: np.ndarray, *, seed: int = 0,
            options: MeasureOptions | None = None, progress: bool = False,
            reference_ids: np.ndarray | None = None, current_ids: np.ndarray | None = None) -> EvidenceReport:
    """Compare ``current`` against ``reference`` (a profile or a 2-D array); same inputs and seed
    give the same numbers. Rows are sampled by their ids when given (by row number otherwise)."""
    opts = options or MeasureOptions()
    seed = check_seed(seed)
    ref = reference if isinstance(reference, EmbeddingProfile) else EmbeddingProfile.from_array(
        reference, seed=seed, chunk_rows=opts.chunk_rows, sample_rows=opts.sample_rows,
        progress=progress, name="reference", ids=reference_ids)
    cur = EmbeddingProfile.from_array(current, seed=current_seed(seed, ref), chunk_rows=opts.chunk_rows,
                                      sample_rows=opts.sample_rows, progress=progress, name="current",
                                      sketch_spec=None if ref.sketch is None else ref.sketch.spec, ids=current_ids)
    return compare(ref, cur, seed=seed, options=opts)


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def current_seed(seed: int, reference: EmbeddingProfile) -> int:
    """The seed of the current side's row keys: another than the reference's, so that equal ids
    (or row numbers) are not picked on both sides together."""
    return int(np.random.SeedSequence([seed, reference.seed, 1]).generate_state(1)[0])


def compare(ref: EmbeddingProfile, cur: EmbeddingProfile, *, seed: int = 0,
            options: MeasureOptions | None = None) -> EvidenceReport:
    """Every metric from the two sides' profiles (the current one keyed with ``current_seed`` and
    built with the reference's sketch spec), however they were built: in this process or on Spark."""
    opts = options or MeasureOptions()
    seed = check_seed(seed)
    if ref.dim != cur.dim:
        raise InputError(f"dimension mismatch: reference vectors have {ref.dim} dimensions, "
                         f"current vectors {cur.dim}")
    if ref.count == 0 or cur.count == 0:
        raise InputError(f"{'reference' if ref.count == 0 else 'current'} set has no rows")

    xs, ys = _samples(ref, cur, opts.sample_rows)
    # Single-threaded BLAS: the sample-sized products here take well under a second on one core,
    # while threaded BLAS on busy cores spin-waits and can be several times slower.
    with threadpool_limits(1):
        results = _metrics(ref, cur, xs, ys, opts, seed)
    inputs = {"n_reference": ref.count, "n_current": cur.count, "dim": ref.dim, "seed": seed,
              "reference_profile_seed": ref.seed, "reference_sample_rows": len(xs),
              "current_sample_rows": len(ys),
              "mmd_rows_per_side": [min(len(xs), opts.mmd_rows), min(len(ys), opts.mmd_rows)],
              "classifier_rows_per_side": [min(len(xs), opts.classifier_rows),
                                           min(len(ys), opts.classifier_rows)],
              "options": asdict(opts)}
    return EvidenceReport(results=results, inputs=inputs)


def _metrics(ref: EmbeddingProfile, cur: EmbeddingProfile, xs: np.ndarray, ys: np.ndarray,
             opts: MeasureOptions, seed: int) -> list[MetricResult]:
    """Every drift metric in catalogue order."""
    rngs = {name: np.random.default_rng([seed, i]) for i, name in enumerate(
        ("mmd2", "domain_classifier.auc", "sliced_wasserstein"))}
    results: list[MetricResult] = []
    results += mean_shift(ref.mean, cur.mean, total_var_ref=float(np.trace(ref.covariance)),
                          total_var_cur=float(np.trace(cur.covariance)), n_ref=ref.count, n_cur=cur.count)
    results.append(_test_or_insufficient(
        "mmd2", xs, ys, opts, lambda a, b: mmd2_test(
            a[:opts.mmd_rows], b[:opts.mmd_rows], permutations=opts.mmd_permutations, rng=rngs["mmd2"])))
    results.append(_sketch_metric("mmd2_rff", ref, cur, opts, mmd2_rff))
    results.append(_test_or_insufficient(
        "domain_classifier.auc", xs, ys, opts, lambda a, b: domain_classifier(
            a[:opts.classifier_rows], b[:opts.classifier_rows], rng=rngs["domain_classifier.auc"])))
    centre, pooled_cov = _pooled_moments(ref, cur)
    axes = principal_axes(pooled_cov, min(opts.pc_components, ref.dim))
    results.append(_test_or_insufficient(
        "pc_drift_share", xs, ys, opts, lambda a, b: pc_drift(a, b, axes, centre, alpha=opts.alpha)))
    results.append(_test_or_insufficient(
        "sliced_wasserstein", xs, ys, opts, lambda a, b: sliced_wasserstein(
            a, b, projections=opts.sliced_projections, rng=rngs["sliced_wasserstein"])))
    results.append(_sketch_metric("sliced_wasserstein_sketch", ref, cur, opts, sliced_wasserstein_sketch))
    results.append(pca_recon_ratio([ref.half(0), ref.half(1)], cur.mean, cur.covariance,
                                   variance=opts.recon_variance))
    results.append(_test_or_insufficient("norm_ks", xs, ys, opts, norm_ks))
    results.append(norm_ratio(ref.mean_norm, cur.mean_norm))
    return results


def _samples(ref: EmbeddingProfile, cur: EmbeddingProfile, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``rows`` of each key-ordered sample: still a uniform sample of each set."""
    return ref.sample[:rows], cur.sample[:rows]


def _test_or_insufficient(name, xs, ys, opts, compute) -> MetricResult:
    if min(len(xs), len(ys)) < opts.min_rows:
        return MetricResult.insufficient(name, f"needs at least {opts.min_rows} rows per side, got "
                                         f"{len(xs)} reference and {len(ys)} current",
                                         rows_per_side=[len(xs), len(ys)])
    return compute(xs, ys)


def _sketch_metric(name, ref: EmbeddingProfile, cur: EmbeddingProfile, opts: MeasureOptions,
                   compute) -> MetricResult:
    if ref.sketch is None:
        return MetricResult.insufficient(name, "the reference profile has no sketches (saved before profile "
                                         "format 2); set the reference again (`reference set --replace`) to compute it")
    if min(ref.count, cur.count) < opts.min_rows:
        return MetricResult.insufficient(name, f"needs at least {opts.min_rows} rows per side, got "
                                         f"{ref.count} reference and {cur.count} current",
                                         rows_per_side=[ref.count, cur.count])
    return compute(ref.sketch, cur.sketch)


def _pooled_moments(a: EmbeddingProfile, b: EmbeddingProfile) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of both sets together: label-blind, which keeps the PC tests exact."""
    mean, m2 = combine_moments(a.count, a.mean, a.m2, b.count, b.mean, b.m2)
    return mean, m2 / (a.count + b.count)
