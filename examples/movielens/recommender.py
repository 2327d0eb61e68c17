"""The recommender under study: truncated-SVD item factors, users folded in from recent ratings.

Training is ``drift_decider.demo.movielens.factorize`` on every rating before a cutoff. At
serving time a user is not looked up but *folded in*: the centred ratings of the request's context
are projected onto the item factors, exactly as SVD maps a training row to its user vector
(u = x V S^-1/2 = x W S^-1 with W = V S^1/2 the item factors). So the reference queries (requests
before the cutoff) and the current queries (requests after it) are made the same way, and a change
in their distribution is a change in the users, not in the procedure.

Items the model was not trained on (new movies) cannot be embedded: they drop out of a context,
and they can never be recommended, which is how a stale model loses quality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drift_decider.demo.movielens import Ratings, factorize

from data_windows import Requests


@dataclass(frozen=True)
class Model:
    item_ids: np.ndarray        # sorted movie ids the model knows
    item_vectors: np.ndarray    # (n_items, dim) float32, W = V S^1/2
    singular_values: np.ndarray  # (dim,), S
    cutoff: int                 # trained on ratings with timestamp < cutoff

    def known(self, items: np.ndarray) -> np.ndarray:
        """Row of each item in ``item_vectors``, -1 for items the model does not know."""
        rows = np.searchsorted(self.item_ids, items)
        rows = np.minimum(rows, len(self.item_ids) - 1)
        return np.where(self.item_ids[rows] == items, rows, -1)


def train(ratings: Ratings, cutoff: int, *, dim: int = 32, seed: int = 0) -> Model:
    """Factorise every rating before ``cutoff``."""
    factors = factorize(ratings.before(cutoff), dim=dim, seed=seed)
    # Columns of W = V S^1/2 have squared norm s because V has orthonormal columns.
    singular = np.einsum("ij,ij->j", factors.item_vectors.astype(np.float64), factors.item_vectors)
    return Model(factors.item_ids, factors.item_vectors, singular, cutoff)


def fold_in(model: Model, ratings: Ratings, requests: Requests, *, min_known: int = 3
            ) -> tuple[np.ndarray, np.ndarray]:
    """Query vectors of the requests whose context has ``min_known`` ratings of known items.

    Returns ``(vectors (n, dim) float32, mask over requests)``; requests failing the mask cannot
    be served by this model (their user's recent movies are all new to it).
    """
    weights = model.item_vectors.astype(np.float64) / model.singular_values
    vectors = np.zeros((len(requests), model.item_vectors.shape[1]))
    mask = np.zeros(len(requests), dtype=bool)
    for i, positions in enumerate(requests.context):
        rows = model.known(ratings.item[positions])
        keep = rows >= 0
        if keep.sum() < min_known:
            continue
        stars = ratings.rating[positions][keep].astype(np.float64)
        vectors[i] = (stars - stars.mean()) @ weights[rows[keep]]
        mask[i] = True
    return vectors[mask].astype(np.float32), mask


def recall_at_k(model: Model, ratings: Ratings, requests: Requests, queries: np.ndarray, *, k: int = 10,
                like: float = 4.0) -> np.ndarray:
    """Recall@k of each request: share of its liked next items (>= ``like`` stars) in the top k.

    Candidates are the items the model knows, minus everything the user rated before the request.
    Liked next items the model does not know stay in the denominator: missing new movies is a real
    loss of quality. Requests with no liked next item get NaN (nothing to recall).
    """
    scores = queries @ model.item_vectors.T
    out = np.full(len(requests), np.nan)
    for i in range(len(requests)):
        targets = requests.targets[i]
        liked = ratings.item[targets][ratings.rating[targets] >= like]
        if len(liked) == 0:
            continue
        row = scores[i].copy()
        seen = model.known(ratings.item[requests.seen[i]])
        row[seen[seen >= 0]] = -np.inf
        top = model.item_ids[np.argpartition(-row, k)[:k]]
        out[i] = np.isin(liked, top).sum() / min(k, len(liked))
    return out
