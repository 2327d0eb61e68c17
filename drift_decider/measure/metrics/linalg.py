"""Eigen-decomposition shared by the PCA-based metrics."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits


def descending_eigh(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clipped at 0) and eigenvectors (columns) of a covariance matrix.

    Single-threaded: for the d <= a few thousand matrices here, threaded LAPACK is slower, and
    much slower (seconds for d = 384) when the cores are busy.
    """
    with threadpool_limits(1):
        eigval, eigvec = np.linalg.eigh(cov)
    return np.clip(eigval[::-1], 0.0, None), eigvec[:, ::-1]
