"""MMD² two-sample test with a Gaussian kernel and a permutation p-value.

The pooled kernel matrix is computed once, in float32, and every permuted statistic is read from
it through matrix products with batches of 0/1 label vectors: no per-permutation copies of the
matrix. With S_xx = a'Ka, S_xy = a'K(1-a) and S_yy = (1-a)'K(1-a) for a label vector a, the
unbiased estimate is (S_xx - m)/(m(m-1)) + (S_yy - n)/(n(n-1)) - 2 S_xy/(mn) (K_ii = 1).
"""

from __future__ import annotations

import numpy as np

from drift_decider.measure.metrics.result import MetricResult

BANDWIDTH_ROWS = 1_000   # pooled rows used for the median heuristic
PERMUTATION_BATCH = 64
KERNEL_BLOCK = 256      # rows of the kernel matrix built per block


def median_bandwidth(z: np.ndarray, rng: np.random.Generator) -> float:
    """sigma with 2 sigma^2 = median pairwise squared distance over a label-blind subsample of the
    pooled rows (the bandwidth is the same for every permutation, so the test stays exact)."""
    idx = np.sort(rng.choice(len(z), size=min(len(z), BANDWIDTH_ROWS), replace=False))
    sub = z[idx].astype(np.float64)
    sq = np.einsum("ij,ij->i", sub, sub)
    d = (sq[:, None] + sq[None, :] - 2.0 * (sub @ sub.T))[np.triu_indices(len(idx), k=1)]
    positive = d[d > 1e-12 * max(float(sq.max()), 1e-300)]
    return float(np.sqrt(np.median(positive) / 2.0)) if positive.size else 0.0


def gaussian_kernel(z: np.ndarray, sigma: float) -> np.ndarray:
    """(N, N) float32 exp(-||zi - zj||^2 / (2 sigma^2)), built from Gram products block by block
    (each block's passes stay in cache)."""
    z = z - z.mean(axis=0)            # distances do not change; float32 cancellation does
    sq = np.einsum("ij,ij->i", z, z)
    gamma = np.float32(1.0 / (2.0 * sigma * sigma))
    k = np.empty((len(z), len(z)), dtype=np.float32)
    for start in range(0, len(z), KERNEL_BLOCK):
        block = k[start:start + KERNEL_BLOCK]
        np.matmul(z[start:start + KERNEL_BLOCK], z.T, out=block)
        block *= 2.0 * gamma
        block -= (gamma * sq[start:start + KERNEL_BLOCK])[:, None]
        block -= (gamma * sq)[None, :]
        np.minimum(block, 0.0, out=block)
        np.exp(block, out=block)
    np.fill_diagonal(k, 1.0)
    return k


def mmd2_test(x: np.ndarray, y: np.ndarray, *, permutations: int, rng: np.random.Generator) -> MetricResult:
    """Unbiased MMD² between x (reference rows) and y (current rows), permutation p-value
    (1 + #{permuted >= observed}) / (1 + permutations)."""
    m, n = len(x), len(y)
    z = np.concatenate([x, y]).astype(np.float32, copy=False)
    sigma = median_bandwidth(z, rng)
    if sigma == 0.0:
        return MetricResult.insufficient("mmd2", "all rows are identical", rows_per_side=[m, n])
    kernel = gaussian_kernel(z, sigma)
    row_sums = kernel.sum(axis=1, dtype=np.float64)
    total = float(row_sums.sum())

    base = np.zeros(m + n, dtype=np.float32)
    base[:m] = 1.0
    stats = []
    remaining = permutations + 1          # column 0 of the first batch is the observed labelling
    while remaining > 0:
        b = min(PERMUTATION_BATCH, remaining)
        labels = np.tile(base, (b, 1))
        if not stats:
            labels[1:] = rng.permuted(labels[1:], axis=1)
        else:
            labels = rng.permuted(labels, axis=1)
        a = np.ascontiguousarray(labels.T)
        s_xx = np.einsum("ij,ij->j", a, kernel @ a, dtype=np.float64)
        s_xy = row_sums @ a - s_xx
        s_yy = total - s_xx - 2.0 * s_xy
        stats.append((s_xx - m) / (m * (m - 1)) + (s_yy - n) / (n * (n - 1)) - 2.0 * s_xy / (m * n))
        remaining -= b
    all_stats = np.concatenate(stats)
    observed, permuted = float(all_stats[0]), all_stats[1:]
    p_value = (1.0 + float(np.sum(permuted >= observed))) / (1.0 + permutations)
    return MetricResult("mmd2", observed, p_value,
                        detail={"bandwidth": sigma, "rows_per_side": [m, n], "permutations": permutations,
                                "kernel": "gaussian, median heuristic"})
