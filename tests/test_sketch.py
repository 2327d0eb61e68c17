"""Sketch metrics against brute-force computations over all rows, and the spec's guards."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import f as f_distribution

from drift_decider.errors import InputError
from drift_decider.measure.distribution import measure
from drift_decider.measure.metrics.sketched import mmd2_rff, sliced_wasserstein_sketch
from drift_decider.measure.metrics.sliced import wasserstein_1d
from drift_decider.measure.profile import EmbeddingProfile
from drift_decider.measure.sketch import FeatureSketch, SketchSpec, random_features


def _pair(n: int, d: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scales = np.linspace(0.5, 1.5, d)
    x = rng.standard_normal((n, d)) * scales
    y = rng.standard_normal((n, d)) * scales
    y[:, 0] += shift
    return x.astype(np.float32), y.astype(np.float32)


def _kernel(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-cdist(a.astype(np.float64), b.astype(np.float64), "sqeuclidean") / (2 * sigma ** 2))


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    z = np.concatenate([x, y])
    k = _kernel(z, z, sigma)
    m, n = len(x), len(y)
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    return float((kxx.sum() - m) / (m * (m - 1)) + (kyy.sum() - n) / (n * (n - 1)) - 2 * kxy.mean())


def test_random_features_approximate_the_gaussian_kernel_and_their_mmd_the_exact_one():
    x, y = _pair(400, 6, 0, shift=0.5)
    base = SketchSpec.from_pilot(x, seed=1)
    spec = SketchSpec(base.dim, 1, base.bandwidth, 2_048, base.projections, base.bins, base.grid_low,
                      base.grid_high)
    fx = random_features(spec, x[:50])
    exact = _kernel(x[:50], x[:50], spec.bandwidth)
    # each entry errs by O(1/sqrt(frequencies)) = 0.02 here; the largest of 1,275 entries by a few times that
    assert np.abs(fx @ fx.T - exact).max() < 0.1
    result = mmd2_rff(FeatureSketch.of_rows(spec, x), FeatureSketch.of_rows(spec, y))
    truth = _unbiased_mmd2(x, y, spec.bandwidth)
    assert truth > 0.01 and result.value == pytest.approx(truth, rel=0.1)


def test_hotelling_p_value_matches_a_direct_computation():
    x, y = _pair(300, 5, 2, shift=0.15)
    spec = SketchSpec.from_pilot(x, seed=3, frequencies=8)
    result = mmd2_rff(FeatureSketch.of_rows(spec, x), FeatureSketch.of_rows(spec, y))
    fx, fy = random_features(spec, x), random_features(spec, y)   # 600 rows: all 16 features are tested
    n, m = len(fx), len(fy)
    pooled = ((n - 1) * np.cov(fx, rowvar=False) + (m - 1) * np.cov(fy, rowvar=False)) / (n + m - 2)
    delta = fx.mean(axis=0) - fy.mean(axis=0)
    t2 = n * m / (n + m) * delta @ np.linalg.solve(pooled, delta)
    p = f_distribution.sf(t2 * (n + m - 17) / (16 * (n + m - 2)), 16, n + m - 17)
    assert result.detail["features_tested"] == 16
    assert result.detail["hotelling_t2"] == pytest.approx(t2, rel=1e-6)
    assert result.p_value == pytest.approx(p, rel=1e-5, abs=1e-12)


def test_tested_feature_count_follows_the_row_count_only():
    x, y = _pair(50, 4, 4, shift=0.0)
    spec = SketchSpec.from_pilot(x, seed=0)
    small = mmd2_rff(FeatureSketch.of_rows(spec, x), FeatureSketch.of_rows(spec, y))
    assert small.detail["features_tested"] == 4            # 100 rows: 2 frequencies, 20 rows per feature
    one_row = mmd2_rff(FeatureSketch.of_rows(spec, x[:1]), FeatureSketch.of_rows(spec, y))
    assert one_row.status == "insufficient_data" and one_row.value is None


def test_sliced_wasserstein_sketch_is_within_one_bin_of_the_exact_distance_over_all_rows():
    x, y = _pair(3_000, 8, 5, shift=0.4)
    spec = SketchSpec.from_pilot(x, seed=6, bins=256)
    result = sliced_wasserstein_sketch(FeatureSketch.of_rows(spec, x), FeatureSketch.of_rows(spec, y))
    exact = wasserstein_1d(x.astype(np.float64) @ spec.directions, y.astype(np.float64) @ spec.directions)
    assert result.detail["outside_grid_share"] == [0.0, 0.0]
    assert abs(result.value - exact.mean()) <= result.detail["resolution"]
    assert abs(result.value - exact.mean()) < 0.02 * exact.mean() + result.detail["resolution"] / 2


def test_mass_outside_the_grid_is_placed_at_its_mean():
    x, _ = _pair(2_000, 4, 7, shift=0.0)
    spec = SketchSpec.from_pilot(x, seed=8)
    far = x + 1e4                        # moves (almost) every projection of the current far past its grid
    result = sliced_wasserstein_sketch(FeatureSketch.of_rows(spec, x), FeatureSketch.of_rows(spec, far))
    exact = wasserstein_1d(x.astype(np.float64) @ spec.directions, far.astype(np.float64) @ spec.directions)
    assert result.detail["outside_grid_share"][1] > 0.9
    assert result.value == pytest.approx(exact.mean(), rel=0.01)


def test_sketch_metrics_see_every_row_while_the_sample_holds_few():
    x, y = _pair(20_000, 8, 9, shift=0.05)
    report = measure(EmbeddingProfile.from_array(x, seed=0, sample_rows=200), y, seed=0)
    by_name = {r.name: r for r in report.results}
    assert by_name["mmd2_rff"].detail["rows_per_side"] == [20_000, 20_000]
    assert by_name["mmd2"].detail["rows_per_side"][0] == 200
    assert by_name["mmd2_rff"].p_value < 0.001     # a 0.05 SD shift in one of 8 dims: visible in 20,000 rows


def test_spec_guards():
    x, _ = _pair(100, 4, 10, shift=0.0)
    spec = SketchSpec.from_pilot(x, seed=0)
    with pytest.raises(InputError, match="dimension mismatch"):
        EmbeddingProfile.from_array(np.zeros((10, 5), np.float32), seed=0, sketch_spec=spec)
    bad = x.copy()
    bad[99, 2] = np.inf
    with pytest.raises(InputError, match="row 99"):
        SketchSpec.from_pilot(bad, seed=0)
    other = SketchSpec.from_pilot(x * 2, seed=0)
    with pytest.raises(InputError, match="different specs"):
        FeatureSketch.of_rows(spec, x).merge(FeatureSketch.of_rows(other, x))
    assert SketchSpec.from_json(spec.to_json()) == spec
    for field, value in (("frequencies", 0), ("frequencies", 10**6), ("bins", 10**9), ("bandwidth", 0.0)):
        with pytest.raises(InputError, match="invalid sketch spec"):
            SketchSpec.from_json({**spec.to_json(), field: value})
