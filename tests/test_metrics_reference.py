"""Each metric against an independent reference computation (brute force, scipy, scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control, ks_2samp, mannwhitneyu, wasserstein_distance
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from drift_decider.measure.metrics.classifier import domain_classifier
from drift_decider.measure.metrics.mmd import gaussian_kernel, median_bandwidth, mmd2_test
from drift_decider.measure.metrics.moments import mean_shift, norm_ratio, pca_recon_ratio
from drift_decider.measure.metrics.norms import norm_ks
from drift_decider.measure.metrics.pc_ks import benjamini_hochberg, pc_drift, principal_axes
from drift_decider.measure.metrics.sliced import random_directions, sliced_wasserstein, wasserstein_1d


def _xy(m=60, n=45, d=5, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d))
    x = (rng.standard_normal((m, d)) @ mix + 3.0).astype(np.float32)
    y = (rng.standard_normal((n, d)) @ mix + 3.0 + shift).astype(np.float32)
    return x, y


def _brute_mmd2(x, y, sigma):
    z = np.concatenate([x, y]).astype(np.float64)
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * sigma ** 2))
    m, n = len(x), len(y)
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    return ((kxx.sum() - m) / (m * (m - 1)) + (kyy.sum() - n) / (n * (n - 1)) - 2 * kxy.mean()), k


def test_mmd2_matches_brute_force_statistic_and_kernel():
    x, y = _xy(shift=0.3)
    result = mmd2_test(x, y, permutations=50, rng=np.random.default_rng(1))
    sigma = result.detail["bandwidth"]
    expected, k = _brute_mmd2(x, y, sigma)
    assert result.value == pytest.approx(expected, abs=1e-6)
    np.testing.assert_allclose(gaussian_kernel(np.concatenate([x, y]), sigma), k, atol=2e-6)


def test_median_bandwidth_is_median_pairwise_distance_on_small_sets():
    x, y = _xy()
    z = np.concatenate([x, y]).astype(np.float64)
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)[np.triu_indices(len(z), 1)]
    assert median_bandwidth(z.astype(np.float32), np.random.default_rng(0)) == pytest.approx(
        np.sqrt(np.median(d2) / 2), rel=1e-5)


def test_mmd2_p_value_matches_an_independent_permutation_count():
    """Same permutations, statistic recomputed by brute force for each: same p-value."""
    x, y = _xy(m=30, n=20, shift=0.2, seed=3)
    permutations = 40
    result = mmd2_test(x, y, permutations=permutations, rng=np.random.default_rng(7))
    # replay the generator: bandwidth subsample first, then the label permutations
    rng = np.random.default_rng(7)
    rng.choice(50, size=50, replace=False)
    labels = np.tile(np.r_[np.ones(30), np.zeros(20)].astype(np.float32), (permutations + 1, 1))
    labels[1:] = rng.permuted(labels[1:], axis=1)
    _, k = _brute_mmd2(x, y, result.detail["bandwidth"])

    def stat(a):
        a = a.astype(bool)
        m, n = a.sum(), (~a).sum()
        return ((k[np.ix_(a, a)].sum() - m) / (m * (m - 1)) + (k[np.ix_(~a, ~a)].sum() - n) / (n * (n - 1))
                - 2 * k[np.ix_(a, ~a)].mean())

    stats = np.array([stat(row) for row in labels])
    assert stats[0] == pytest.approx(result.value, abs=1e-6)
    assert result.p_value == pytest.approx((1 + np.sum(stats[1:] >= stats[0] - 1e-9)) / (1 + permutations))


def test_mmd2_identical_rows_is_insufficient():
    x = np.ones((20, 3), np.float32)
    assert mmd2_test(x, x.copy(), permutations=10, rng=np.random.default_rng(0)).status == "insufficient_data"


def test_domain_classifier_auc_is_held_out_roc_auc_and_mann_whitney():
    x, y = _xy(m=200, n=160, shift=0.4, seed=2)
    result = domain_classifier(x, y, rng=np.random.default_rng(5))
    assert result.detail["test_rows"] == [100, 80] and result.detail["train_rows"] == [100, 80]
    assert 0.6 < result.value <= 1.0 and result.p_value < 1e-4
    # rebuild the held-out scores with the same split and check AUC = U / (m n) = ROC AUC
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(5)
    z = np.concatenate([x, y]).astype(np.float64)
    z = (z - z.mean(0)) / z.std(0)
    ro, co = rng.permutation(200), 200 + rng.permutation(160)
    labels = np.r_[np.zeros(200), np.ones(160)]
    model = LogisticRegression(solver="liblinear").fit(z[np.r_[ro[:100], co[:80]]], labels[np.r_[ro[:100], co[:80]]])
    test = np.r_[ro[100:], co[80:]]
    scores = model.decision_function(z[test])
    assert result.value == pytest.approx(roc_auc_score(labels[test], scores))
    assert result.p_value == pytest.approx(mannwhitneyu(scores[100:], scores[:100], alternative="greater").pvalue)


def test_principal_axes_match_scikit_learn_pca():
    x, _ = _xy(m=500, d=6, seed=4)
    axes = principal_axes(np.cov(x.astype(np.float64), rowvar=False, bias=True), 3)
    pca = PCA(n_components=3).fit(x)
    np.testing.assert_allclose(np.abs(axes.T @ pca.components_.T), np.eye(3), atol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_benjamini_hochberg_matches_scipy(seed):
    p = np.random.default_rng(seed).uniform(0, 0.2, size=12) ** 2
    assert benjamini_hochberg(p, 0.05) == int((false_discovery_control(p) <= 0.05).sum())


def test_pc_drift_is_ks_per_component_with_bh_and_bonferroni():
    x, y = _xy(m=300, n=250, d=6, shift=2.0, seed=6)
    centre = np.concatenate([x, y]).mean(0)
    axes = principal_axes(np.cov(np.concatenate([x, y]).astype(np.float64), rowvar=False), 4)
    result = pc_drift(x, y, axes, centre, alpha=0.05)
    p = np.array([ks_2samp((x - centre) @ axes[:, j], (y - centre) @ axes[:, j]).pvalue for j in range(4)])
    assert result.p_value == pytest.approx(min(1.0, 4 * p.min()))
    assert result.value == benjamini_hochberg(p, 0.05) / 4
    assert result.value > 0


def test_sliced_wasserstein_equals_mean_of_sorted_differences_for_equal_sizes():
    x, y = _xy(m=80, n=80, shift=0.5, seed=8)
    result = sliced_wasserstein(x, y, projections=16, rng=np.random.default_rng(2))
    dirs = random_directions(x.shape[1], 16, np.random.default_rng(2))
    brute = np.mean([np.abs(np.sort(x @ dirs[:, j]) - np.sort(y @ dirs[:, j])).mean() for j in range(16)])
    assert result.value == pytest.approx(brute, rel=1e-5)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=0), 1.0)


@pytest.mark.parametrize("m, n", [(70, 50), (33, 91), (1, 7), (40, 40)])
def test_wasserstein_1d_matches_scipy_for_unequal_sizes(m, n):
    rng = np.random.default_rng(m * n)
    a, b = rng.standard_normal((m, 4)), rng.standard_normal((n, 4)) * 2 + 0.3
    ours = wasserstein_1d(a, b)
    np.testing.assert_allclose(ours, [wasserstein_distance(a[:, j], b[:, j]) for j in range(4)], rtol=1e-10)


def test_sliced_wasserstein_in_one_dimension_is_the_wasserstein_distance():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((70, 1)), rng.standard_normal((50, 1)) * 2
    result = sliced_wasserstein(x, y, projections=3, rng=rng)
    assert result.value == pytest.approx(wasserstein_distance(x[:, 0], y[:, 0]))


def test_norm_ks_and_norm_ratio():
    x, _ = _xy(m=100, n=90, seed=9)
    y = x[:90] * 1.5
    result = norm_ks(x, y)
    expected = ks_2samp(np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1))
    assert result.value == pytest.approx(expected.statistic) and result.p_value == pytest.approx(expected.pvalue)
    ratio = norm_ratio(float(np.linalg.norm(x, axis=1).mean()), float(np.linalg.norm(y, axis=1).mean()))
    assert ratio.value == pytest.approx(1.5 * np.linalg.norm(x[:90], axis=1).mean()
                                        / np.linalg.norm(x, axis=1).mean(), rel=1e-6)
    assert result.p_value < 0.01


def test_mean_shift_matches_direct_formulas():
    x, y = _xy(m=400, n=300, shift=0.5, seed=10)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    total_var = x64.var(0).sum()
    cos_r, euc_r = mean_shift(x64.mean(0), y64.mean(0), total_var_ref=total_var, total_var_cur=y64.var(0).sum(),
                              n_ref=400, n_cur=300)
    a, b = x64.mean(0), y64.mean(0)
    assert cos_r.value == pytest.approx(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert euc_r.value == pytest.approx(np.linalg.norm(a - b) / np.sqrt(total_var))


def test_mean_shift_cosine_of_centred_data_is_insufficient():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((500, 4)), rng.standard_normal((500, 4))
    cos_r, euc_r = mean_shift(x.mean(0), y.mean(0), total_var_ref=x.var(0).sum(), total_var_cur=y.var(0).sum(),
                              n_ref=500, n_cur=500)
    assert cos_r.status == "insufficient_data" and euc_r.status == "ok"


def test_pca_recon_ratio_matches_brute_force_projection():
    x, y = _xy(m=600, n=400, d=6, seed=11)
    y = y + np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)  # energy off the PCs
    a, b = x[:300].astype(np.float64), x[300:].astype(np.float64)
    halves = [(len(h), h.mean(0), np.cov(h, rowvar=False, bias=True)) for h in (a, b)]
    result = pca_recon_ratio(halves, y.mean(0).astype(np.float64),
                             np.cov(y.astype(np.float64), rowvar=False, bias=True),
                             variance=0.9)
    ref_res = cur_res = 0.0
    for fit, held, k in ((a, b, result.detail["components"][0]), (b, a, result.detail["components"][1])):
        pca = PCA(n_components=k).fit(fit)
        centre = fit.mean(0)

        def residual(rows):
            c = rows - centre
            return float(((c - (c @ pca.components_.T) @ pca.components_) ** 2).sum(1).mean())
        ref_res += residual(held)
        cur_res += residual(y.astype(np.float64))
    assert result.value == pytest.approx(cur_res / ref_res, rel=1e-6)
    assert result.value > 1.2


def test_pca_recon_ratio_needs_rows():
    x, _ = _xy(m=10, d=8)
    h = (5, x[:5].mean(0).astype(np.float64), np.cov(x[:5].astype(np.float64), rowvar=False))
    assert pca_recon_ratio([h, h], h[1], h[2], variance=0.9).status == "insufficient_data"
