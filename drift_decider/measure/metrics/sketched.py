"""Metrics over every row, read from two sets' FeatureSketches (see drift_decider.measure.sketch).

- ``mmd2_rff``: the squared distance between the sets' random-feature means, minus its expected
  value under no drift (so it is unbiased, like ``mmd2``): an estimate of the Gaussian-kernel MMD²
  at the reference's bandwidth over all rows. Its p-value is Hotelling's T² on the same features,
  referred to the F distribution. The test uses the first ``frequencies`` features with
  ``N / features >= 20`` (N = rows on both sides), where the F approximation for bounded features
  holds; the count is chosen from the row counts alone, never from the data, so the test stays
  valid, and it is stated in the result.
- ``sliced_wasserstein_sketch``: the mean 1-D Wasserstein-1 distance over the sketches' random
  projections, from their histograms. Placing each bin's mass at its centre moves each
  distribution by at most half a bin, so the value is within one bin width of the exact distance
  over all rows, except for the mass outside the grid (collapsed to its mean), whose share is stated.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import f as f_distribution

from drift_decider.measure.metrics.result import MetricResult
from drift_decider.measure.sketch import FeatureSketch

ROWS_PER_FEATURE = 20


def mmd2_rff(reference: FeatureSketch, current: FeatureSketch) -> MetricResult:
    n, m = reference.count, current.count
    if min(n, m) < 2:
        return MetricResult.insufficient("mmd2_rff", f"needs at least 2 rows per side, got {n} and {m}",
                                         rows_per_side=[n, m])
    total = n + m
    freqs = reference.spec.frequencies
    delta = reference.feature_mean - current.feature_mean
    estimate = float(delta @ delta - np.trace(reference.feature_m2) / (n * (n - 1))
                     - np.trace(current.feature_m2) / (m * (m - 1)))
    tested = min(freqs, max(1, total // (2 * ROWS_PER_FEATURE)))
    idx = np.r_[0:tested, freqs:freqs + tested]
    pooled = (reference.feature_m2 + current.feature_m2)[np.ix_(idx, idx)] / (total - 2)
    eigenvalues, eigenvectors = np.linalg.eigh(pooled)
    detail = {"bandwidth": reference.spec.bandwidth, "frequencies": freqs, "rows_per_side": [n, m],
              "kernel": "gaussian, reference median heuristic, random Fourier features"}
    keep = eigenvalues > 1e-10 * max(float(eigenvalues.max()), 0.0)
    rank = int(keep.sum())
    if rank == 0:
        return MetricResult.insufficient("mmd2_rff", "the random features do not vary: all rows are identical",
                                         **detail)
    whitened = (eigenvectors[:, keep].T @ delta[idx]) / np.sqrt(eigenvalues[keep])
    t2 = float(n * m / total * whitened @ whitened)
    df_denominator = total - rank - 1
    p_value = float(f_distribution.sf(t2 * df_denominator / (rank * (total - 2)), rank, df_denominator))
    return MetricResult("mmd2_rff", estimate, p_value,
                        detail={**detail, "hotelling_t2": t2, "features_tested": rank})


def sliced_wasserstein_sketch(reference: FeatureSketch, current: FeatureSketch) -> MetricResult:
    spec = reference.spec
    positions_ref, mass_ref = _histogram_masses(reference)
    positions_cur, mass_cur = _histogram_masses(current)
    positions = np.concatenate([positions_ref, positions_cur], axis=1)
    signed = np.concatenate([mass_ref, -mass_cur], axis=1)
    order = np.argsort(positions, axis=1, kind="stable")
    positions = np.take_along_axis(positions, order, axis=1)
    cdf_gap = np.cumsum(np.take_along_axis(signed, order, axis=1), axis=1)
    distances = (np.abs(cdf_gap[:, :-1]) * np.diff(positions, axis=1)).sum(axis=1)
    outside = [float((s.histograms[:, 0] + s.histograms[:, -1]).mean() / s.count) for s in (reference, current)]
    return MetricResult("sliced_wasserstein_sketch", float(distances.mean()),
                        detail={"projections": spec.projections, "bins": spec.bins, "max": float(distances.max()),
                                "resolution": float(spec.bin_widths().mean()), "rows_per_side": [
                                    reference.count, current.count],
                                "outside_grid_share": outside})


def _histogram_masses(sketch: FeatureSketch) -> tuple[np.ndarray, np.ndarray]:
    """(projections, bins + 2) positions and probability masses: bin centres, and the mean of the
    values below and above the grid (the grid edge when there are none)."""
    spec = sketch.spec
    low, high, widths = np.asarray(spec.grid_low), np.asarray(spec.grid_high), spec.bin_widths()
    centres = low[:, None] + widths[:, None] * (np.arange(spec.bins) + 0.5)
    counts = sketch.histograms.astype(np.float64)
    below = np.where(counts[:, 0] > 0, sketch.tail_sums[:, 0] / np.maximum(counts[:, 0], 1), low)
    above = np.where(counts[:, -1] > 0, sketch.tail_sums[:, 1] / np.maximum(counts[:, -1], 1), high)
    positions = np.concatenate([below[:, None], centres, above[:, None]], axis=1)
    return positions, counts / sketch.count
