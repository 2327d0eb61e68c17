"""The catalogue as it is now: item factors refitted on every rating so far, in the served model's space.

The served model cannot embed movies it was not trained on. A production system learns them
anyway (a nightly refit, a content tower); here a *shadow* factorisation of all ratings up to the
end of the window plays that part. SVD fixes item vectors only up to a rotation (and their scale
grows with the amount of data), so the shadow factors are mapped onto the served ones by the
similarity transform (rotation + one scale) that best matches the movies both know. What remains
after that alignment is real movement: new movies, and movies whose neighbours changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drift_decider.demo.movielens import Ratings, factorize
from drift_decider.measure.metrics.structure import procrustes_fit

from recommender import Model


@dataclass(frozen=True)
class Catalog:
    ids: np.ndarray        # every movie rated before ``end``
    vectors: np.ndarray    # (n, dim) float32, in the served model's coordinates
    end: int


def current_catalog(ratings: Ratings, model: Model, end: int, *, seed: int = 0) -> Catalog:
    factors = factorize(ratings.before(end), dim=model.item_vectors.shape[1], seed=seed)
    rows = model.known(factors.item_ids)
    shared = rows >= 0
    rotation, scale = procrustes_fit(factors.item_vectors[shared].astype(np.float64),
                                     model.item_vectors[rows[shared]].astype(np.float64))
    aligned = (factors.item_vectors.astype(np.float64) @ rotation) * scale
    return Catalog(factors.item_ids, aligned.astype(np.float32), end)


def same_period_refit(ratings: Ratings, model: Model, *, share: float = 0.8, seed: int = 0) -> Catalog:
    """The model refitted on a random ``share`` of the users who rated before its cutoff, aligned.

    No time has passed, so whatever structure metrics report between this and the model is the
    noise of refitting, the floor against which a window's value means "the world changed".
    """
    before = ratings.before(model.cutoff)
    users = np.unique(before.user)
    keep = np.random.default_rng(seed).choice(users, size=int(share * len(users)), replace=False)
    subset = before._take(np.isin(before.user, keep))
    return current_catalog(subset, model, model.cutoff, seed=seed)
