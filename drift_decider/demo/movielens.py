"""MovieLens ml-latest-small: ratings and item factors learned from them.

The data lives in ``examples/movielens/data`` under its own license (README.txt there) and ships in
the package as ``movielens_data`` (a symlink in the repository, files in a wheel). Item
factors come from a truncated SVD of the centred user x item rating matrix: a small, real
recommender embedding whose drift behaviour is that of real data, not of a Gaussian.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD

DATA_DIR = Path(__file__).resolve().parent / "movielens_data"


@dataclass(frozen=True)
class Ratings:
    """Ratings as parallel arrays, sorted by time."""

    user: np.ndarray       # int64 user ids
    item: np.ndarray       # int64 movie ids
    rating: np.ndarray     # float32 stars
    timestamp: np.ndarray  # int64 seconds since the epoch

    def before(self, ts: int) -> "Ratings":
        return self._take(self.timestamp < ts)

    def between(self, start: int, end: int) -> "Ratings":
        return self._take((self.timestamp >= start) & (self.timestamp < end))

    def of_users(self, users: np.ndarray) -> "Ratings":
        return self._take(np.isin(self.user, users))

    def _take(self, mask: np.ndarray) -> "Ratings":
        return Ratings(self.user[mask], self.item[mask], self.rating[mask], self.timestamp[mask])


def load_ratings(data_dir: Path | str = DATA_DIR) -> Ratings:
    path = Path(data_dir) / "ratings.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: MovieLens ratings not found (expected the ml-latest-small copy)")
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    order = np.argsort(table[:, 3], kind="stable")
    table = table[order]
    return Ratings(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64),
                   table[:, 2].astype(np.float32), table[:, 3].astype(np.int64))


@dataclass(frozen=True)
class Factors:
    """Item and user embeddings of a matrix factorisation, with the ids of their rows."""

    item_ids: np.ndarray
    item_vectors: np.ndarray  # (n_items, dim) float32
    user_ids: np.ndarray
    user_vectors: np.ndarray  # (n_users, dim) float32


def factorize(ratings: Ratings, dim: int = 32, min_item_ratings: int = 1, seed: int = 0) -> Factors:
    """Truncated SVD of the user x item matrix of ratings centred on each user's mean."""
    items, item_counts = np.unique(ratings.item, return_counts=True)
    items = items[item_counts >= min_item_ratings]
    keep = np.isin(ratings.item, items)
    users = np.unique(ratings.user[keep])
    rows = np.searchsorted(users, ratings.user[keep])
    cols = np.searchsorted(items, ratings.item[keep])
    values = ratings.rating[keep].astype(np.float64)
    user_mean = np.bincount(rows, weights=values) / np.maximum(np.bincount(rows), 1)
    matrix = sparse.csr_matrix((values - user_mean[rows], (rows, cols)), shape=(len(users), len(items)))
    svd = TruncatedSVD(n_components=dim, random_state=seed, algorithm="randomized", n_iter=7)
    user_vectors = svd.fit_transform(matrix)
    item_vectors = svd.components_.T * np.sqrt(svd.singular_values_)
    user_vectors = user_vectors / np.sqrt(svd.singular_values_)
    return Factors(items, item_vectors.astype(np.float32), users, user_vectors.astype(np.float32))


def item_factors(dim: int = 32, min_item_ratings: int = 5, seed: int = 0,
                 data_dir: Path | str = DATA_DIR) -> np.ndarray:
    """Item embeddings learned from all ratings: the 'real embeddings' tests and benchmarks draw from."""
    return factorize(load_ratings(data_dir), dim=dim, min_item_ratings=min_item_ratings, seed=seed).item_vectors
