"""Policy engine speed where users feel it: ``policy backtest`` and a live check's decision.

Run: PYTHONPATH=. python benchmarks/bench_policy.py [--repeat R] [--seed S] [--before PATH]

Targets (issue 14), with the default policy (policies/recommender-default.yaml):
- ``policy backtest`` of 10,000 checks under 3 s, and linear: the cost per check stays flat from
  2,500 to 10,000 checks. Timed as the command works, JSON decoding and printing aside: the rows
  parsed (``recorded_from_rows``), every check replayed, each step's record built, the summary.
- a live decision over a 3,000-check history under 10 ms. A live check folds its history into a
  PolicyState once (reported apart: it grows with the history) and decides once on it. Two rows say
  what bounds that: the history digest alone (every decision id hashes every earlier check's fields
  and metric values), and the whole step from the history rows a check reads to its decision
  (records built, folded, decided; a checkout before issue 14 built each record's encoding with it).
- ``--store DIR``: what surrounds that decision in a live check, a sqlite MLflow store holding 3,000
  complete check runs of one version (built in DIR on first use, about 2 minutes): reading the
  history as a check does before deciding (``TrackingStore.checks_before``), and the one-run read
  that publishing the version's latest decision makes. Wall seconds, one run each.

Metrics are drawn uniformly over [0, 1] (norm ratio around 1): rules match often, so most decisions
take the busy path (fired, held back by ``for`` or a cooldown). Times are CPU seconds of this
process, the median of --repeat runs. ``--before PATH`` runs the same measurements on another
checkout (e.g. a ``git worktree`` of the commit before a change) in a child process and prints
both tables, so before and after are measured in one run on one machine load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import median
from typing import Any, Callable

import numpy as np

from drift_decider.policy import CheckRecord, evaluate, load_policy
from drift_decider.policy.backtest import recorded_from_rows, replay, summary

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "policies" / "recommender-default.yaml"
START = datetime(2026, 1, 5, tzinfo=timezone.utc)
BACKTEST_SIZES = (2_500, 5_000, 10_000)
LIVE_HISTORY = 3_000

try:
    from drift_decider.measure.metric_names import metric_keys
    from drift_decider.policy import PolicyState

    def fold(policy: Any, records: list[CheckRecord]) -> Any:
        return PolicyState().after_all(policy, records)

    def digest_alone(records: list[CheckRecord]) -> str | None:
        """The history digest the decision id hashes, computed as a fold does and nothing else."""
        from drift_decider.policy.records import encode_record

        hasher, names = hashlib.sha256(), None
        for record in records:
            encoded, names = encode_record(record, names)
            hasher.update(encoded)
        return hasher.hexdigest()
except ImportError:     # a checkout before issue 14 (--before): a History derived its state when deciding
    from drift_decider.catalog import metric_keys
    from drift_decider.policy import History

    def fold(policy: Any, records: list[CheckRecord]) -> Any:
        return History(records)

    def digest_alone(records: list[CheckRecord]) -> str | None:
        return None       # encoded when each record was built (CheckRecord._encoded), then hashed lazily


def random_metrics(rng: np.random.Generator) -> dict[str, float]:
    values = {key: float(rng.uniform(0.0, 1.0)) for key in sorted(metric_keys())}
    values["norm_ratio"] = float(rng.uniform(0.8, 1.2))
    return values


def rows(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    """``drift-decider history --json`` rows of one model version: daily checks, recorded as ``none``."""
    return [{"window_id": f"w{i}", "window_end": (START + timedelta(days=i)).isoformat(),
             "metrics": random_metrics(rng), "action": "none", "model": "bench", "version": "1"}
            for i in range(n)]


def backtest(policy: Any, data: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``policy backtest --json`` computes from its rows."""
    before, recorded = recorded_from_rows(data)
    return summary([step.to_dict() for step in replay(policy, recorded, history=before)])


def timed(work: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median CPU seconds of ``repeat`` runs, and what the last run returned."""
    seconds = []
    for _ in range(repeat):
        start = time.process_time()
        result = work()
        seconds.append(time.process_time() - start)
    return median(seconds), result


def measure(policy_path: Path, repeat: int, seed: int) -> list[dict[str, Any]]:
    """One row per measurement: what, how many checks, seconds, and what it decided."""
    policy = load_policy(policy_path)
    rng = np.random.default_rng(seed)
    out = []
    for n in BACKTEST_SIZES:
        data = rows(rng, n)
        seconds, totals = timed(lambda: backtest(policy, data), repeat)
        out.append({"what": f"policy backtest, {n:,} checks", "checks": n, "seconds": seconds,
                    "per_check": True, "decided": totals["actions"]})
    history = rows(rng, LIVE_HISTORY)
    records = [CheckRecord.from_dict(row, i) for i, row in enumerate(history)]
    now, metrics = records[-1].decided_at + timedelta(days=1), random_metrics(rng)
    seconds, state = timed(lambda: fold(policy, records), repeat)
    out.append({"what": f"live: fold {LIVE_HISTORY:,} checks", "checks": LIVE_HISTORY, "seconds": seconds,
                "per_check": True})
    seconds, decision = timed(lambda: evaluate(policy, metrics, fold(policy, records), now), repeat)
    out.append({"what": "live: fold and decide", "checks": LIVE_HISTORY, "seconds": seconds,
                "per_check": False, "decided": {decision.action: 1}})
    seconds, decision = timed(lambda: evaluate(policy, metrics, state, now), max(repeat, 20))
    out.append({"what": "live: decide on the folded state", "checks": LIVE_HISTORY, "seconds": seconds,
                "per_check": False, "decided": {decision.action: 1}})
    if digest_alone(records) is not None:
        seconds, _ = timed(lambda: digest_alone(records), repeat)
        out.append({"what": "live: of the fold, the digest alone", "checks": LIVE_HISTORY, "seconds": seconds,
                    "per_check": True})
    seconds, decision = timed(lambda: evaluate(policy, metrics, fold(
        policy, [CheckRecord.from_dict(row, i) for i, row in enumerate(history)]), now), repeat)
    out.append({"what": "live: records built, fold, decide", "checks": LIVE_HISTORY, "seconds": seconds,
                "per_check": False, "decided": {decision.action: 1}})
    return out


def build_store(folder: Path, n: int, seed: int) -> str:
    """A sqlite store whose experiment holds ``n`` complete check runs of model ``bench`` version 1,
    tagged and with metrics as a check writes them (no artifacts: nothing here reads them)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from drift_decider.tracking import tags
    from drift_decider.tracking.registry import EXPERIMENT

    uri = f"sqlite:///{folder.resolve() / 'mlflow.db'}"
    if (folder / "mlflow.db").exists():
        return uri
    folder.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(uri, uri)
    experiment_id = client.create_experiment(EXPERIMENT, artifact_location=(folder / "artifacts").as_uri())
    for i, row in enumerate(rows(np.random.default_rng(seed), n)):
        end = row["window_end"]
        run = client.create_run(experiment_id, tags={
            tags.MODEL: "bench", tags.VERSION: "1", tags.KIND: "check", tags.WINDOW_ID: row["window_id"],
            tags.WINDOW_END: end, tags.DECISION: "none", tags.RULE: "", tags.MODE: "enforce",
            tags.DECISION_ID: f"{i:064x}", tags.DECIDED_AT: end, tags.COMPLETE: "true"})
        stamp = int(datetime.fromisoformat(end).timestamp() * 1000)
        client.log_batch(run.info.run_id, metrics=[Metric(k, v, stamp, i + 1) for k, v in row["metrics"].items()])
        client.set_terminated(run.info.run_id)
    return uri


def measure_store(folder: Path, seed: int) -> list[dict[str, Any]]:
    """Wall seconds of a live check's two reads of its history, on a store of LIVE_HISTORY checks."""
    from drift_decider.tracking import checks
    from drift_decider.tracking.registry import VersionRef
    from drift_decider.tracking.store import TrackingStore

    store = TrackingStore.open(build_store(folder, LIVE_HISTORY, seed))
    ref = VersionRef("bench", "1", None, {})
    out = []
    start = time.perf_counter()
    records = store.checks_before(ref, datetime(2100, 1, 1, tzinfo=timezone.utc))
    out.append({"what": f"live: read {len(records):,} checks (sqlite)", "checks": len(records),
                "seconds": time.perf_counter() - start, "per_check": True})
    start = time.perf_counter()
    newest = checks.check_runs(store.client, store.experiment_id(), ref, newest=True)
    out.append({"what": f"live: read the newest ({newest[0].data.tags['drift_decider.window_id']})",
                "checks": len(records), "seconds": time.perf_counter() - start, "per_check": False})
    return out


def table(title: str, measured: list[dict[str, Any]]) -> str:
    lines = [title, f"  {'measurement':<36} {'ms':>9} {'us/check':>9}  decided"]
    for row in measured:
        decided = ", ".join(f"{k}={v}" for k, v in sorted(row.get("decided", {}).items()))
        per_check = f"{row['seconds'] * 1e6 / row['checks']:.1f}" if row["per_check"] else ""
        lines.append(f"  {row['what']:<36} {row['seconds'] * 1000:>9.2f} {per_check:>9}  {decided}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="the policy (of both runs)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--before", type=Path, help="another checkout to measure too (e.g. an older commit)")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON (for --before)")
    parser.add_argument("--store", type=Path, help="also time a live check's history reads from a sqlite store "
                                                   "of 3,000 checks kept in this folder (built if missing)")
    args = parser.parse_args()
    if args.before:
        env = {**os.environ, "PYTHONPATH": str(args.before.resolve())}
        child = subprocess.run([sys.executable, __file__, "--json", "--repeat", str(args.repeat), "--seed",
                                str(args.seed), "--policy", str(args.policy)],
                               env=env, check=True, capture_output=True, text=True)
        print(table(f"before: {args.before}", json.loads(child.stdout)))
    measured = measure(args.policy, args.repeat, args.seed)
    if args.json:
        print(json.dumps(measured))
        return
    if args.store:
        measured += measure_store(args.store, args.seed)
    print(table(f"{'after: ' if args.before else ''}{REPO}", measured))
    print(f"load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())}; targets: backtest of 10,000 checks "
          f"< 3 s and flat us/check; live decision over {LIVE_HISTORY:,} checks < 10 ms")


if __name__ == "__main__":
    main()
