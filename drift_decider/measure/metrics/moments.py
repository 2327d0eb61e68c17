"""Metrics computed exactly from whole-set moments: centroid shift, norm ratio, PCA residual ratio.

They read counts, means, covariances and mean norms (what an EmbeddingProfile keeps), so they
cover every row of both sets however large, and cost O(dim^3) at most.
"""

from __future__ import annotations

import numpy as np

from drift_decider.measure.metrics.linalg import descending_eigh
from drift_decider.measure.metrics.result import MetricResult


# A centroid closer to the origin than this many standard errors has no meaningful direction.
CENTROID_STANDARD_ERRORS = 3.0


def mean_shift(mean_ref: np.ndarray, mean_cur: np.ndarray, *, total_var_ref: float, total_var_cur: float,
               n_ref: int, n_cur: int) -> list[MetricResult]:
    """Cosine distance between centroids, and their euclidean distance in units of the reference's
    RMS distance to its centroid (sqrt of the total variance), so 1.0 means 'one typical spread'.

    Embeddings are often centred (SVD factors are): then a centroid is noise around the origin and
    its direction, hence the cosine, means nothing; the cosine says insufficient_data when a
    centroid's norm is within CENTROID_STANDARD_ERRORS standard errors of zero.
    """
    norms = (float(np.linalg.norm(mean_ref)), float(np.linalg.norm(mean_cur)))
    errors = (float(np.sqrt(total_var_ref / n_ref)), float(np.sqrt(total_var_cur / n_cur)))
    out = []
    if any(norm <= CENTROID_STANDARD_ERRORS * err for norm, err in zip(norms, errors)):
        out.append(MetricResult.insufficient(
            "mean_shift.cosine", "a centroid is indistinguishable from the zero vector, so its "
            "direction is noise", centroid_norms=list(norms), standard_errors=list(errors)))
    else:
        cos = float(np.dot(mean_ref, mean_cur)) / (norms[0] * norms[1])
        out.append(MetricResult("mean_shift.cosine", 1.0 - min(1.0, max(-1.0, cos)),
                                detail={"centroid_norms": list(norms)}))
    if total_var_ref <= 0.0:
        out.append(MetricResult.insufficient("mean_shift.euclidean", "the reference has no spread"))
    else:
        spread = float(np.sqrt(total_var_ref))
        distance = float(np.linalg.norm(mean_cur - mean_ref))
        out.append(MetricResult("mean_shift.euclidean", distance / spread,
                                detail={"raw_distance": distance, "reference_rms_spread": spread}))
    return out


def norm_ratio(mean_norm_ref: float, mean_norm_cur: float) -> MetricResult:
    """Mean L2 norm of current over reference: tells a scale change from a change of direction."""
    if mean_norm_ref <= 0.0:
        return MetricResult.insufficient("norm_ratio", "reference vectors all have norm 0")
    return MetricResult("norm_ratio", mean_norm_cur / mean_norm_ref,
                        detail={"mean_norm_reference": mean_norm_ref, "mean_norm_current": mean_norm_cur})


def _residual_fit(mean: np.ndarray, cov: np.ndarray, variance: float) -> tuple[np.ndarray, int, float]:
    """Orthonormal basis of the directions left out by a PCA keeping ``variance`` (at least one)."""
    eigval, eigvec = descending_eigh(cov)
    total = float(eigval.sum())
    k = min(int(np.searchsorted(np.cumsum(eigval) / max(total, 1e-300), variance) + 1), len(mean) - 1)
    return eigvec[:, k:], k, total


def _residual(rest: np.ndarray, centre: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """E||(I-P)(x - centre)||^2 = tr(R'(C + dd')R) with d = mean - centre: exact from moments."""
    d = (mean - centre) @ rest
    return float(np.einsum("ij,ij->", cov @ rest, rest) + d @ d)


def pca_recon_ratio(ref_halves: list[tuple[int, np.ndarray, np.ndarray]], mean_cur: np.ndarray,
                    cov_cur: np.ndarray, *, variance: float) -> MetricResult:
    """Mean squared PCA residual of current over reference, PCA fitted on the reference.

    The reference comes as two random halves (count, mean, covariance). A PCA fitted on one half
    is scored on the other half and on the current set, both ways: the reference's residual is then
    out-of-sample like the current's, so the ratio is about 1 without drift at any size (an
    in-sample reference residual is biased low and reads as drift on small or anisotropic sets).
    """
    dim = len(mean_cur)
    if dim < 2:
        return MetricResult.insufficient("pca_recon_ratio", "needs at least 2 dimensions")
    smallest = min(n for n, _, _ in ref_halves)
    if smallest < dim:
        return MetricResult.insufficient("pca_recon_ratio", f"needs at least {2 * dim} reference rows "
                                         f"(each random half at least one per dimension)")
    ref_residual = cur_residual = 0.0
    ks = []
    for fit, held_out in ((ref_halves[0], ref_halves[1]), (ref_halves[1], ref_halves[0])):
        rest, k, total = _residual_fit(fit[1], fit[2], variance)
        if total <= 0.0:
            return MetricResult.insufficient("pca_recon_ratio", "the reference has no spread")
        ks.append(k)
        ref_residual += _residual(rest, fit[1], held_out[1], held_out[2])
        cur_residual += _residual(rest, fit[1], mean_cur, cov_cur)
    if ref_residual <= 0.0:
        return MetricResult.insufficient("pca_recon_ratio", "the reference's PCA residual is zero")
    return MetricResult("pca_recon_ratio", cur_residual / ref_residual,
                        detail={"components": ks, "variance": variance,
                                "residual_reference": ref_residual / 2, "residual_current": cur_residual / 2})
