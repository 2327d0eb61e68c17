"""Histories of one chain share a memo that grows in place; evaluating them from several threads at
once must still decide as a History built from scratch (a race once duplicated EWMA prefix states and
shifted every later one)."""

from __future__ import annotations

import random
import sys
import threading
from datetime import timedelta

from drift_decider.policy import CheckRecord, History, evaluate, parse_policy
from drift_decider.policy.history import canonical_json
from policy_support import T0

POLICY = parse_policy("""\
apiVersion: drift-decider/v1
kind: Policy
metadata: {name: threads, version: "1"}
rules:
  - {id: chart, action: recalibrate, for: 2,
     when: {metric: scores.mean_shift, ewma: {lambda: 0.3, target: 0, sigma: 0.05, L: 3}}}
  - {id: sums, action: retrain, when: {metric: scores.mean_shift, cusum: {target: 0, sigma: 0.05, side: upper}}}
""")
N = 20_000


def record(history: History, values: dict[str, float], now) -> str:
    return canonical_json(evaluate(POLICY, values, history, now).to_dict())


def test_histories_of_one_chain_evaluated_from_several_threads() -> None:
    rnd = random.Random(1)
    checks = tuple(CheckRecord(f"c{i}", T0 + timedelta(hours=i), {"scores.mean_shift": rnd.gauss(0, 0.05)})
                   for i in range(N))
    now, values = T0 + timedelta(hours=N), {"scores.mean_shift": 0.01}
    expected = {n: record(History(checks[:n]), values, now) for n in (N - 1, N)}
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)                    # switch threads as often as the interpreter allows
    try:
        for trial in range(4):
            older = History(checks[:N - 1])
            tip = older.append(checks[-1])         # shares the memo, nothing derived yet
            got: dict[str, str] = {}
            work = [("older", older), ("tip", tip), ("tip again", tip)]
            threads = [threading.Thread(target=lambda name=name, h=h: got.__setitem__(name, record(h, values, now)))
                       for name, h in work]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert got == {"older": expected[N - 1], "tip": expected[N], "tip again": expected[N]}, f"trial {trial}"
    finally:
        sys.setswitchinterval(interval)
