"""Policy evaluation throughput: a 20-rule policy with 30 prior checks of history.

Run: PYTHONPATH=. python benchmarks/bench_policy.py [--decisions N] [--workers W] [--repeat R] [--seed S]
Target (issue 4): at least 10,000 decisions/s on 2 cores. "2 cores" is 2 worker processes taking
chunks of the work as they come free (rows "x2"); the single-process rows give the per-core cost.
Each row is the median of --repeat runs, with the range.

Throughput matters where many decisions are made at once: backtests (`policy backtest`, `policy
test`), where every check of a series is decided on the checks before it. That is the first
headline: 200 series, each 100 checks replayed after a 30-check History, every decision on its own,
never-seen History; each replayed decision's record is built and appended (History.append) inside the
timed loop, the input checks are parsed before it (one row parses them inside, from plain dicts). The
second headline is the cold case: independent decisions, each on a new History of 30 records built
once (nothing derived from a History carries over). A `check` decides once per process after
minutes of measuring; the last row builds each History from plain dicts inside the timed loop, the
engine's whole cost for such a check. Metrics are drawn around the thresholds: each condition holds
about half the time, so nearly every decision has a rule that fires, held back or not (the busy
path; a quiet series short-circuits more and costs less). Times ("s") are CPU seconds of the
evaluating process; for several processes, the larger of the wall time and the busiest process's
CPU time. The Python loop reference and the load average show how busy the machine was.
"""

from __future__ import annotations

import argparse
import multiprocessing
from collections import Counter
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from drift_decider.catalog import metric_keys
from drift_decider.policy import CheckRecord, History, evaluate, load_policy
from drift_decider.policy.backtest import Recorded, recorded_from_rows, replay

ACTIONS = ("retrain", "recalibrate", "refresh-index")


def policy_text(n_rules: int) -> str:
    """A policy mixing every condition kind: expressions, nested trees, slope, projection, EWMA, CUSUM."""
    kinds = [
        "when: 'knn_jaccard < $low and procrustes.residual > $high'",
        "when: {all: ['domain_classifier.auc > 0.7', 'domain_classifier.auc.p_value < 0.01', "
        "{any: ['knn_jaccard < 0.7', 'procrustes.residual > 0.2']}]}",
        "when: 'index.recall_at_k < 0.9 or index.coverage < 0.98 or index.stale_share > 0.1'",
        "when: {all: ['knn_jaccard < 0.8', {metric: knn_jaccard, projected: {window: 4, within: 14d}, "
        "op: lt, value: 0.5}]}",
        "when: {metric: norm_ratio, slope: {window: 6}, op: gt, value: 0.002}",
        "when: {metric: scores.mean_shift, ewma: {lambda: 0.2, target: 0, sigma: 0.01, L: 3}}",
        "when: {all: [{metric: knn_jaccard, cusum: {target: 0.9, sigma: 0.03, side: lower}}, "
        "'procrustes.residual > 0.3']}",
        "when: {all: ['norm_ks.p_value < 0.01', {not: 'norm_ratio >= 0.9 and norm_ratio <= 1.1'}]}",
    ]
    # by action, as in the default policy, but refresh-index 3d: the backtest's checks are a day apart
    cooldowns = {"retrain": "14d", "recalibrate": "7d", "refresh-index": "3d"}
    rules = []
    for i in range(n_rules):
        action = ACTIONS[i % 3]
        rules.append(f"  - id: rule-{i:02d}\n    action: {action}\n    priority: {i % 5}\n"
                     f"    for: {1 + i % 3}\n    cooldown: {cooldowns[action]}\n    {kinds[i % len(kinds)]}\n"
                     f"    explain: 'knn_jaccard={{knn_jaccard:.3f}}'\n")
    return ("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: bench, version: '1'}\n"
            "params: {low: 0.5, high: 0.3}\nrules:\n" + "".join(rules))


def random_metrics(rng: np.random.Generator) -> dict[str, float]:
    """Values spread across the thresholds, so rules match, get suppressed and fire."""
    values = {key: float(rng.uniform(0.0, 1.0)) for key in sorted(metric_keys())}
    values["norm_ratio"] = float(rng.uniform(0.8, 1.2))
    values["scores.mean_shift"] = float(rng.normal(0.0, 0.02))
    return values


def make_history(rng: np.random.Generator, n: int, now: datetime) -> History:
    return History(tuple(
        CheckRecord(f"w{i}", now - timedelta(days=7 * (n - i)), random_metrics(rng),
                    str(rng.choice(("none",) * 6 + ACTIONS)), None, None, "enforce")
        for i in range(n)))


def run(policy, jobs: list[tuple[dict[str, float], History]], now, fresh: bool
        ) -> tuple[float, Counter]:
    """Time one decision per (metrics, history) job. ``fresh`` builds a new History object per
    decision from the same records, so no per-History cache (digest, prefix statistics, memoised
    ``for`` checks) carries over; records themselves are built once, as the tracking layer would."""
    counts: Counter = Counter()
    start = time.process_time()
    for i, (m, history) in enumerate(jobs):
        if fresh:
            history = History(history.checks)
        decision = evaluate(policy, m, history, now, context={"model": "bench", "window_id": str(i)})
        counts[decision.action] += 1
    return time.process_time() - start, counts


def backtest_series(jobs: list[tuple[dict[str, float], History]], now: datetime
                    ) -> list[tuple[History, list[Recorded]]]:
    """The jobs as backtest input: per distinct History, its jobs' metrics as recorded checks one day
    apart after it (checks as a backtest loads them from a file: parsed before the clock starts)."""
    series: dict[int, tuple[History, list[Recorded]]] = {}
    for m, history in jobs:
        checks = series.setdefault(id(history), (history, []))[1]
        moment = now + timedelta(days=len(checks))
        checks.append(Recorded(CheckRecord(f"r{len(checks)}", moment, m, "none", None, moment, "enforce"),
                               model="bench", version="1"))
    return list(series.values())


def run_backtest(policy, series: list[tuple[History, list[Recorded]]]) -> tuple[float, Counter]:
    """``policy backtest`` on each series in turn: every check decided on the History before it plus
    the decisions replayed so far, each replayed decision's record built and appended (History.append)
    inside the timed loop. No two decisions see the same History."""
    counts: Counter = Counter()
    start = time.process_time()
    for history, checks in series:
        for step in replay(policy, checks, history=History(history.checks)):
            counts[step.decision.action] += 1
    return time.process_time() - start, counts


def run_backtest_rows(policy, series: list[tuple[History, list[Recorded]]]) -> tuple[float, Counter]:
    """The backtest with its input parsed inside the timed loop, as ``policy backtest`` reads a history
    file (rows of plain dicts, times as ISO strings; JSON decoding and output excluded)."""
    rows = [[*history.to_dicts(), *({**entry.check.to_dict(), "model": entry.model, "version": entry.version}
                                    for entry in checks)] for history, checks in series]
    since = [checks[0].check.decided_at for _, checks in series]
    counts: Counter = Counter()
    start = time.process_time()
    for data, first in zip(rows, since):
        before, recorded = recorded_from_rows(data, first)
        for step in replay(policy, recorded, history=before):
            counts[step.decision.action] += 1
    return time.process_time() - start, counts


def run_rebuilt(policy, jobs: list[tuple[dict[str, float], History]], now) -> tuple[float, Counter]:
    """One decision per job on a History built inside the timed loop from plain dicts (as a check
    builds it from MLflow runs): the engine's whole cost for a check that decides once."""
    rows = {id(history): history.to_dicts() for _, history in jobs}
    counts: Counter = Counter()
    start = time.process_time()
    for i, (m, history) in enumerate(jobs):
        decision = evaluate(policy, m, History.from_dicts(rows[id(history)]), now,
                            context={"model": "bench", "window_id": str(i)})
        counts[decision.action] += 1
    return time.process_time() - start, counts


def loop_reference() -> float:
    """Seconds for 10^6 iterations of a trivial Python loop: to compare machines and load."""
    start = time.process_time()
    total = 0
    for i in range(1_000_000):
        total += i
    return time.process_time() - start


_SHARED: dict = {}     # set before forking workers, so jobs are inherited rather than pickled


def measure(mode: str, start: int = 0, stop: int | None = None) -> tuple[float, Counter]:
    """One scenario on jobs[start:stop] (a backtest: on series[start:stop])."""
    policy, now = _SHARED["policy"], _SHARED["now"]
    if mode == "backtest":
        return run_backtest(policy, _SHARED["series"][start:stop])
    return run(policy, _SHARED["jobs"][start:stop], now, fresh=mode == "cold")


def _worker(task: tuple[str, int, int]) -> tuple[int, float, Counter]:
    return (os.getpid(), *measure(*task))


def measure_parallel(mode: str, workers: int) -> tuple[float, Counter]:
    """The scenario in chunks (500 decisions; 5 backtest series) handed to ``workers`` processes as
    they come free (as backtests of several model versions would run side by side; ``policy
    backtest`` itself runs one series in one process): a process slowed by the host then takes fewer
    chunks instead of holding up a fixed half. Returns the time the run took, the larger of the wall
    time (pool start-up included) and the most CPU time one process spent, and the merged counts."""
    total, chunk = (len(_SHARED["series"]), 5) if mode == "backtest" else (len(_SHARED["jobs"]), 500)
    tasks = [(mode, i, min(i + chunk, total)) for i in range(0, total, chunk)]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(_worker, tasks, chunksize=1)
    wall = time.perf_counter() - start
    seconds: Counter = Counter()
    merged: Counter = Counter()
    for pid, spent, part in results:
        seconds[pid] += spent
        merged.update(part)
    return max(max(seconds.values()), wall), merged


def _forget(histories: list[History]) -> None:
    """Drop what each History derived (digest, memos) so every row starts from the same state."""
    for history in histories:
        history._past = history._hashed = history._digest = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--rules", type=int, default=20)
    parser.add_argument("--history", type=int, default=30)
    parser.add_argument("--histories", type=int, default=200,
                        help="distinct histories the decisions cycle through (200 x 30 records: each "
                             "decision reads records that have left the CPU caches)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the table gives the median "
                        "and the range (rates swing between runs on a shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    histories = [make_history(rng, args.history, now) for _ in range(args.histories)]
    jobs = [(random_metrics(rng), histories[i % len(histories)]) for i in range(args.decisions)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(policy_text(args.rules))
        t0 = time.perf_counter()
        policy = load_policy(path)
        load_ms = (time.perf_counter() - t0) * 1000
    _SHARED.update(policy=policy, jobs=jobs, now=now, series=backtest_series(jobs, now))
    run(policy, jobs[:500], now, fresh=True)                           # warm-up
    rows = []
    steps = args.decisions // len(histories)
    for label, mode in ((f"backtest: {steps} checks after {args.history}", "backtest"),
                        ("cold: new History per decision", "cold"),
                        (f"warm: {args.histories} Histories reused", "warm")):
        for workers in sorted({1, args.workers}):
            runs = []
            for _ in range(args.repeat):
                _forget(histories)
                runs.append(measure(mode) if workers == 1 else measure_parallel(mode, workers))
            seconds = sorted(sec for sec, _ in runs)
            counts = runs[0][1]
            assert all(part == counts for _, part in runs)     # every repeat decides the same
            assert workers == 1 or counts == rows[-1][3]       # and so do one and several processes
            rows.append((f"{label} x{workers}", sum(counts.values()), seconds, counts))
    some_series = _SHARED["series"][:max(len(histories) // 10, 1)]
    seconds, counts = run_backtest_rows(policy, some_series)
    rows.append(("backtest parsing its rows x1", sum(counts.values()), [seconds], counts))
    some = jobs[:max(args.decisions // 10, 1)]
    seconds, counts = run_rebuilt(policy, some, now)
    rows.append(("History built from dicts x1", len(some), [seconds], counts))
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"policy: {len(policy.rules)} rules, history {args.history} checks, load+compile {load_ms:.1f} ms; "
          f"python reference: 10^6 loop iterations in {loop_reference() * 1000:.0f} ms; load average {load}")
    print(f"{'scenario (x processes)':<36} {'decisions':>9} {'s':>7} {'decisions/s':>12} {'range/s':>15} "
          f"{'us/decision':>12}  actions")
    for label, n, seconds, counts in rows:
        mid = seconds[len(seconds) // 2]        # the median run (of --repeat)
        spread = f"{n / seconds[-1]:,.0f}-{n / seconds[0]:,.0f}" if len(seconds) > 1 else ""
        mix = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        print(f"{label:<36} {n:>9} {mid:>7.3f} {n / mid:>12,.0f} {spread:>15} {1e6 * mid / n:>12.1f}  {mix}")
    for what in ("backtest", "cold"):
        label, n, seconds, _ = [row for row in rows if row[0].startswith(what)][args.workers > 1]
        print(f"headline, {what}, {label.rsplit(' x', 1)[1]} process(es): {n / seconds[len(seconds) // 2]:,.0f} "
              f"decisions/s, median of {len(seconds)} (issue 4 target: 10,000 with 2)")


if __name__ == "__main__":
    main()
