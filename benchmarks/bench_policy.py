"""Policy evaluation throughput: a 20-rule policy with 30 prior checks of history.

Run: PYTHONPATH=. python benchmarks/bench_policy.py [--decisions N] [--workers W] [--seed S]
Target (issue 4): at least 10,000 decisions/s on 2 cores. Decisions are independent, so "2 cores"
is measured as 2 worker processes each taking half of the decisions (rows "x2"); the single-process
rows give the per-core cost. The headline is the cold case: every decision gets a new History, so
nothing derived from a History carries over, while the records are built once (a replay or backtest
appends one record per check). The last row also builds each History from plain dicts inside the
timed loop, the whole engine cost of a check that decides once (it then reads MLflow for far longer). Times are
CPU seconds of the evaluating processes, so other load on a shared machine inflates them less than
wall time would; the Python loop reference and the load average show how busy the machine was.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from drift_decider.catalog import metric_keys
from drift_decider.policy import CheckRecord, History, evaluate, load_policy

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
    rules = []
    for i in range(n_rules):
        cooldown = f"    cooldown: {7 * (i % 3)}d\n" if i % 3 else ""
        rules.append(f"  - id: rule-{i:02d}\n    action: {ACTIONS[i % 3]}\n    priority: {i % 5}\n"
                     f"    for: {1 + i % 3}\n{cooldown}    {kinds[i % len(kinds)]}\n"
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
        ) -> tuple[float, dict[str, int]]:
    """Time one decision per (metrics, history) job. ``fresh`` builds a new History object per
    decision from the same records, so no per-History cache (digest, prefix statistics, memoised
    ``for`` checks) carries over; records themselves are built once, as the tracking layer would."""
    counts: dict[str, int] = {}
    start = time.process_time()
    for i, (m, history) in enumerate(jobs):
        if fresh:
            history = History(history.checks)
        decision = evaluate(policy, m, history, now, context={"model": "bench", "window_id": str(i)})
        counts[decision.action] = counts.get(decision.action, 0) + 1
    return time.process_time() - start, counts


def run_rebuilt(policy, jobs: list[tuple[dict[str, float], History]], now) -> tuple[float, dict[str, int]]:
    """One decision per job on a History built inside the timed loop from plain dicts (as a check
    builds it from MLflow runs): the engine's whole cost for a check that decides once."""
    rows = {id(history): history.to_dicts() for _, history in jobs}
    counts: dict[str, int] = {}
    start = time.process_time()
    for i, (m, history) in enumerate(jobs):
        decision = evaluate(policy, m, History.from_dicts(rows[id(history)]), now,
                            context={"model": "bench", "window_id": str(i)})
        counts[decision.action] = counts.get(decision.action, 0) + 1
    return time.process_time() - start, counts


def loop_reference() -> float:
    """Seconds for 10^6 iterations of a trivial Python loop: to compare machines and load."""
    start = time.process_time()
    total = 0
    for i in range(1_000_000):
        total += i
    return time.process_time() - start


_SHARED: dict = {}     # set before forking workers, so jobs are inherited rather than pickled


def _worker(task: tuple[int, int, bool]) -> tuple[float, dict[str, int]]:
    index, workers, fresh = task
    return run(_SHARED["policy"], _SHARED["jobs"][index::workers], _SHARED["now"], fresh)


def _forget(histories: list[History]) -> None:
    """Drop per-History caches so every row starts from the same state."""
    for history in histories:
        history.__dict__.pop("_past", None)
        history.__dict__.pop("_digest", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--rules", type=int, default=20)
    parser.add_argument("--history", type=int, default=30)
    parser.add_argument("--histories", type=int, default=200,
                        help="distinct histories the decisions cycle through (200 x 30 records: each "
                             "decision reads records that have left the CPU caches)")
    parser.add_argument("--workers", type=int, default=2)
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
    _SHARED.update(policy=policy, jobs=jobs, now=now)
    run(policy, jobs[:500], now, fresh=True)                           # warm-up
    rows = []
    for label, fresh in (("cold: new History per decision", True), (f"warm: {args.histories} Histories reused", False)):
        _forget(histories)
        seconds, counts = run(policy, jobs, now, fresh)
        rows.append((f"{label} x1", args.decisions, seconds, counts))
        if args.workers > 1:
            _forget(histories)
            with multiprocessing.get_context("fork").Pool(args.workers) as pool:
                results = pool.map(_worker, [(i, args.workers, fresh) for i in range(args.workers)])
            merged: dict[str, int] = {}
            for _, part in results:
                for action, n in part.items():
                    merged[action] = merged.get(action, 0) + n
            # the processes run side by side: the slowest one sets the throughput
            rows.append((f"{label} x{args.workers}", args.decisions, max(sec for sec, _ in results), merged))
    some = jobs[:max(args.decisions // 10, 1)]
    seconds, counts = run_rebuilt(policy, some, now)
    rows.append(("History built from dicts x1", len(some), seconds, counts))
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"policy: {len(policy.rules)} rules, history {args.history} checks, load+compile {load_ms:.1f} ms; "
          f"python reference: 10^6 loop iterations in {loop_reference() * 1000:.0f} ms; load average {load}")
    print(f"{'scenario (x processes)':<34} {'decisions':>9} {'cpu s':>7} {'decisions/s':>12} "
          f"{'us/decision':>12}  actions")
    for label, n, seconds, counts in rows:
        mix = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        print(f"{label:<34} {n:>9} {seconds:>7.3f} {n / seconds:>12,.0f} {1e6 * seconds / n:>12.1f}  {mix}")
    _, n, seconds, _ = rows[1 if args.workers > 1 else 0]
    print(f"headline: cold, {max(args.workers, 1)} process(es): {n / seconds:,.0f} decisions/s "
          f"(issue 4 target: 10,000 with 2)")


if __name__ == "__main__":
    main()
