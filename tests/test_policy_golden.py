"""Decision records must not change when evaluation is made faster.

tests/data/policy_golden.json holds, for a seeded set of policies, histories and metrics (every
condition kind, missing values, dry-run and future-dated checks, short histories), a sha256 prefix
of each decision's canonical record and of its explanation. It was written by the engine before its
per-History work was made incremental, and still holds for the explicit PolicyState that replaced
that machinery (regenerate only for an intended change of the record:
``PYTHONPATH=. python tests/test_policy_golden.py --write``). Inputs come from ``random.Random``,
whose stream is stable across Python versions, so the golden does not depend on numpy.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from drift_decider.policy import CheckRecord, PolicyState, evaluate, parse_policy
from drift_decider.policy.records import canonical_json

GOLDEN = Path(__file__).parent / "data" / "policy_golden.json"
T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
ACTIONS = ("retrain", "recalibrate", "refresh-index")
CONDITIONS = (
    "'knn_jaccard < $low and procrustes.residual > $high'",
    "{all: ['domain_classifier.auc > 0.7', 'domain_classifier.auc.p_value < 0.01',"
    " {any: ['knn_jaccard < 0.3', 'procrustes.residual > 0.8']}]}",
    "'index.recall_at_k < 0.2 or index.coverage < 0.1 or not (index.stale_share <= 0.9)'",
    "{all: ['knn_jaccard < 0.8',"
    " {metric: knn_jaccard, projected: {window: 4, within: 14d}, op: lt, value: 0.5}]}",
    "{metric: norm_ratio, slope: {window: 6}, op: gt, value: 0.002}",
    "{metric: norm_ratio, slope: {window: 3}, op: lte, value: -0.004}",
    "{metric: scores.mean_shift, ewma: {lambda: 0.2, target: 0, sigma: 0.01, L: 3}}",
    "{metric: scores.mean_shift, ewma: {lambda: 0.5, target: 0.01, sigma: 0.02, L: 2, side: upper}}",
    "{all: [{metric: knn_jaccard, cusum: {target: 0.6, sigma: 0.1, side: lower}},"
    " 'procrustes.residual > 0.3']}",
    "{metric: mmd2, cusum: {target: 0.4, sigma: 0.2, k: 0.25, h: 2}}",
    "{all: ['norm_ks.p_value < 0.01', {not: 'norm_ratio >= 0.9 and norm_ratio <= 1.1'}]}",
    "{any: [{metric: index.coverage, missing: true}, 'index.coverage < 0.05']}",
    "{metric: knn_turnover, projected: {window: 3, within: 7d}, op: gt, value: 0.8}",
)
METRICS = ("knn_jaccard", "procrustes.residual", "domain_classifier.auc", "domain_classifier.auc.p_value",
           "index.recall_at_k", "index.coverage", "index.stale_share", "norm_ratio", "norm_ks.p_value",
           "scores.mean_shift", "mmd2", "knn_turnover")


def policy_text(rnd: random.Random, mode: str) -> str:
    rules = []
    for i in range(16):
        lines = [f"  - id: rule-{i:02d}", f"    action: {rnd.choice(ACTIONS)}",
                 f"    priority: {rnd.randint(0, 3)}", f"    when: {CONDITIONS[i % len(CONDITIONS)]}"]
        if rnd.random() < 0.6:
            lines.append(f"    for: {rnd.randint(2, 4)}")
        if rnd.random() < 0.5:
            lines.append(f"    cooldown: {rnd.choice(('12h', '3d', '7d', '14d', '30d'))}")
        if rnd.random() < 0.5:
            lines.append("    explain: 'jaccard {knn_jaccard:.3f}, shift {scores.mean_shift:.2g}, "
                         "low {$low}'")
        rules.append("\n".join(lines) + "\n")
    return ("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: golden, version: '1'}\n"
            f"mode: {mode}\nparams: {{low: 0.5, high: 0.3}}\nrules:\n" + "".join(rules))


def metrics(rnd: random.Random, p_missing: float) -> dict[str, float]:
    """Values spread over the thresholds above; some missing, some not finite (also missing)."""
    out: dict[str, float] = {}
    for name in METRICS:
        roll = rnd.random()
        if roll < p_missing:
            continue
        if roll < p_missing + 0.01:
            out[name] = float("nan")
            continue
        value = rnd.random()
        if name == "norm_ratio":
            value = 0.8 + 0.4 * value
        elif name == "scores.mean_shift":
            value = 0.06 * value - 0.02
        elif name.endswith("p_value"):
            value = value * 0.03
        out[name] = value
    return out


def history(rnd: random.Random) -> tuple[CheckRecord, ...]:
    n = rnd.choice((0, 1, 2, 3, 5, 8, 13, 30))
    rows = []
    for i in range(n):
        end = T0 - timedelta(days=7 * (n - i), hours=rnd.randint(-12, 12))
        decided = None if rnd.random() < 0.5 else end + timedelta(hours=rnd.randint(0, 36))
        if rnd.random() < 0.03:
            decided = T0 + timedelta(days=1)               # a clock that ran ahead
        rows.append(CheckRecord(f"w{i}", end, metrics(rnd, 0.08), rnd.choice(("none",) * 2 + ACTIONS),
                                None, decided, rnd.choice(("enforce",) * 4 + ("dry-run",))))
    return tuple(rows)


def records(seed: int = 20261125, decisions: int = 400) -> list[list[str]]:
    """[action, sha256 prefix of the canonical record, of the explanation] per decision."""
    rnd = random.Random(seed)
    policies = [parse_policy(policy_text(rnd, mode)) for mode in ("enforce", "enforce", "dry-run")]
    histories = [history(rnd) for _ in range(40)]
    states = {}         # (policy, history) -> its state, folded once
    out = []
    for i in range(decisions):
        values, policy, h = metrics(rnd, 0.05), i % len(policies), rnd.randrange(40)
        if (policy, h) not in states:
            states[policy, h] = PolicyState().after_all(policies[policy], histories[h])
        decision = evaluate(policies[policy], values, states[policy, h],
                            T0 + timedelta(minutes=rnd.randint(0, 600)), context={"case": str(i)})
        record = canonical_json(decision.to_dict()).encode()
        out.append([decision.action, hashlib.sha256(record).hexdigest()[:16],
                    hashlib.sha256(decision.explain().encode()).hexdigest()[:16]])
    return out


def test_decision_records_match_the_golden_file() -> None:
    expected = json.loads(GOLDEN.read_text())
    got = records(expected["seed"], len(expected["records"]))
    assert {a for a, _, _ in got} == {"none", *ACTIONS}          # the inputs reach every outcome
    mismatched = [i for i, (g, e) in enumerate(zip(got, expected["records"])) if g != e]
    assert not mismatched, f"{len(mismatched)} records differ, first at decision {mismatched[0]}"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"seed": 20261125, "records": records()}, indent=0) + "\n")
