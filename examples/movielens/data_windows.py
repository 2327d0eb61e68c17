"""Time windows and recommendation requests replayed from the MovieLens rating log.

MovieLens ratings are very unevenly spread over time (6,000 in 1996, 500 in 1998, 10,000 in 2000),
so calendar windows would mix near-empty and crowded periods. Windows here hold an equal number of
ratings instead: every window carries the same statistical weight.

A *request* is what a serving system sees: a user, the time of the request, the user's recent
ratings (the context the query embedding is folded in from) and the ratings that follow (the
held-out "next" items a good recommender should have shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from drift_decider.demo.movielens import Ratings


@dataclass(frozen=True)
class Window:
    """Ratings with ``start <= timestamp < end``; ``index`` counts windows from the start of the log."""

    index: int
    start: int
    end: int

    @property
    def window_id(self) -> str:
        return f"w{self.index:02d}"

    @property
    def start_iso(self) -> str:
        return datetime.fromtimestamp(self.start, tz=timezone.utc).isoformat()

    @property
    def end_iso(self) -> str:
        return datetime.fromtimestamp(self.end, tz=timezone.utc).isoformat()

    @property
    def label(self) -> str:
        return datetime.fromtimestamp(self.start, tz=timezone.utc).strftime("%Y-%m")


def equal_count_windows(ratings: Ratings, n_windows: int) -> list[Window]:
    """Split the log into ``n_windows`` windows of (nearly) equal rating counts.

    Boundaries fall between distinct timestamps, so one second's ratings never straddle two windows.
    """
    if n_windows < 2:
        raise ValueError(f"need at least 2 windows, got {n_windows}")
    ts = ratings.timestamp
    cuts = [int(ts[0])]
    for q in range(1, n_windows):
        boundary = int(ts[min(len(ts) - 1, round(q * len(ts) / n_windows))])
        if boundary > cuts[-1]:
            cuts.append(boundary)
    cuts.append(int(ts[-1]) + 1)
    return [Window(i, cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)]


@dataclass(frozen=True)
class Requests:
    """Parallel arrays, one row per request; context and targets are index ranges into ``ratings``."""

    user: np.ndarray          # user id
    time: np.ndarray          # timestamp of the request: just after the last context rating
    context: list[np.ndarray]  # positions (into the rating log) of the user's recent ratings
    targets: list[np.ndarray]  # positions of the user's next ratings
    seen: list[np.ndarray]     # positions of everything the user rated before the request

    def __len__(self) -> int:
        return len(self.user)

    def take(self, mask: np.ndarray) -> "Requests":
        rows = np.flatnonzero(mask)
        return Requests(self.user[rows], self.time[rows], [self.context[i] for i in rows],
                        [self.targets[i] for i in rows], [self.seen[i] for i in rows])


def build_requests(ratings: Ratings, *, every: int = 10, context: int = 20, horizon: int = 10) -> Requests:
    """One request after every ``every``-th rating of each user.

    The query context is the user's last ``context`` ratings (at least ``every`` of them); the
    targets are the ``horizon`` ratings that follow. Requests are deterministic: no sampling.
    """
    order = np.lexsort((np.arange(len(ratings.user)), ratings.timestamp, ratings.user))
    users, starts = np.unique(ratings.user[order], return_index=True)
    bounds = list(starts) + [len(order)]
    req_user, req_time, ctx, tgt, seen = [], [], [], [], []
    for u, lo, hi in zip(users, bounds[:-1], bounds[1:]):
        positions = order[lo:hi]
        for cut in range(every, len(positions) - 1, every):
            req_user.append(u)
            req_time.append(int(ratings.timestamp[positions[cut - 1]]))
            ctx.append(positions[max(0, cut - context):cut])
            tgt.append(positions[cut:cut + horizon])
            seen.append(positions[:cut])
    time = np.asarray(req_time, dtype=np.int64)
    by_time = np.argsort(time, kind="stable")
    return Requests(np.asarray(req_user, dtype=np.int64)[by_time], time[by_time],
                    [ctx[i] for i in by_time], [tgt[i] for i in by_time], [seen[i] for i in by_time])


def in_window(requests: Requests, window: Window) -> Requests:
    return requests.take((requests.time >= window.start) & (requests.time < window.end))


def data_growth(ratings: Ratings, cutoff: int, until: int) -> float:
    """What a team passes as `check --data-growth`: ratings between a version's cutoff and ``until``, as a
    share of those it was trained on (every rating before the cutoff)."""
    trained = int(np.count_nonzero(ratings.timestamp < cutoff))
    return (int(np.count_nonzero(ratings.timestamp < until)) - trained) / trained
