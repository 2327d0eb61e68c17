"""Which action is decided on seeded drift scenarios with a known right action? A confusion matrix.

    PYTHONPATH=. python benchmarks/scenario_confusion.py [--seeds 8] [--first-seed 0] [--persist 2]

Runs every scenario kind at every strength (drift_decider.scenarios) for ``--seeds`` seeds
(10 kinds x 3 strengths x 8 seeds = 240 scenarios), computes every metric a real check computes
(distribution drift from ``drift_decider.measure.measure`` plus structure, index-health and score
metrics) and decides:

- with the shipped policy (``drift_decider.policy.load_policy`` / ``evaluate``), each scenario seen
  by ``--persist`` consecutive daily checks of the same drift (the policy's ``for: 2`` rules need
  two), when the policy file exists, and
- always with the PROVISIONAL rule below, which exists to show that the metrics separate the
  actions. Its thresholds come from what each metric means, not from these scenarios; they are
  then checked here. It is not a policy and is not shipped.

Also prints, per scenario kind, min / median / max of each key metric, so that policy thresholds
can be set between the no-change values and the values of each kind.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from drift_decider.policy import load_policy
from drift_decider.scenarios import (SCENARIO_KINDS, STRENGTHS, check_values, first_action, generate_scenario,
                                     scenario_grid)

ACTIONS = ("none", "refresh-index", "recalibrate", "retrain")
KEY_METRICS = ("knn_jaccard", "knn_turnover", "procrustes.moved_share", "procrustes.residual", "procrustes.scale",
               "movement.cosine_p50", "index.recall_at_k", "index.coverage", "index.stale_share", "scores.ks",
               "scores.ks.p_value", "scores.mean_shift", "norm_ratio", "norm_ks.p_value", "domain_classifier.auc",
               "mmd2.p_value")
EPSILON = 0.1  # relative move that counts as "moved" (index_health.DEFAULT_EPSILON)

# PROVISIONAL thresholds, each from the metric's meaning (value under no change in brackets).
RETRAIN_TURNOVER = 0.01      # >1 % of neighbour relations came from outside the 5k reference neighbourhood [0]
RETRAIN_MOVED = 0.01         # >1 % of items point elsewhere (>0.1 cosine) after the best rotation [0]
RECAL_SCALE = 0.05           # global scale off by >5 %: every inner-product score is 5 % off [1]
RECAL_MOVEMENT = EPSILON ** 2 / 2  # median item moved > epsilon of its norm (unit vectors: |d|^2 = 2 cos-dist) [0]
RECAL_SCORES = 0.05          # the typical top-k score is >5 % off [0]
REFRESH_COVERAGE = 0.99      # >1 % of the catalogue unreachable [1]
REFRESH_STALE = 0.01         # >1 % of indexed items served from a place more than epsilon away [0]
REFRESH_RECALL = 0.90        # one true top-k neighbour in ten missing [~1 for a fresh ANN index]


def provisional_rule(values: Mapping[str, float]) -> str:
    """Heaviest repair first: a retrain rebuilds space and index; a recalibration makes the index usable."""
    def get(name: str, default: float) -> float:
        return values.get(name, default)

    if get("knn_turnover", 0) > RETRAIN_TURNOVER and get("procrustes.moved_share", 0) > RETRAIN_MOVED:
        return "retrain"
    if (abs(get("procrustes.scale", 1) - 1) > RECAL_SCALE or get("movement.cosine_p50", 0) > RECAL_MOVEMENT
            or get("scores.mean_shift", 0) > RECAL_SCORES):
        return "recalibrate"
    if (get("index.coverage", 1) < REFRESH_COVERAGE or get("index.stale_share", 0) > REFRESH_STALE
            or get("index.recall_at_k", 1) < REFRESH_RECALL):
        return "refresh-index"
    return "none"


def policy_decider(path: Path, persist: int) -> Callable[[Mapping[str, float]], str]:
    """The shipped policy as a decider: each scenario played as ``persist`` consecutive daily checks
    of the same drift (``scenarios.first_action``); 1 is a single check with an empty history."""
    policy = load_policy(path)
    return lambda values: first_action(policy, dict(values), checks=persist)


def confusion_table(pairs: list[tuple[str, str]]) -> str:
    counts = Counter(pairs)
    width = max(len(a) for a in ACTIONS) + 2
    lines = ["expected \\ decided".ljust(20) + "".join(a.rjust(width) for a in ACTIONS) + "   correct"]
    for expected in ACTIONS:
        row = [counts[(expected, decided)] for decided in ACTIONS]
        total = sum(row)
        share = f"{counts[(expected, expected)] / total:8.1%}" if total else "       -"
        lines.append(expected.ljust(20) + "".join(str(n).rjust(width) for n in row) + "  " + share)
    correct = sum(counts[(a, a)] for a in ACTIONS)
    lines.append(f"overall: {correct}/{len(pairs)} correct ({correct / len(pairs):.1%}); "
                 f"retrain under no change: {counts[('none', 'retrain')]}")
    return "\n".join(lines)


def distribution_table(rows: list[tuple[str, float, dict[str, float]]]) -> str:
    lines = ["metric".ljust(24) + "".join(kind[:26].rjust(28) for kind in SCENARIO_KINDS)]
    for name in KEY_METRICS:
        cells = []
        for kind in SCENARIO_KINDS:
            vals = [v[name] for k, _, v in rows if k == kind and name in v and math.isfinite(v[name])]
            cells.append(f"{min(vals):.3g}/{np.median(vals):.3g}/{max(vals):.3g}" if vals else "-")
        lines.append(name.ljust(24) + "".join(c.rjust(28) for c in cells))
    return "\n".join(lines)


def per_cell_accuracy(rows: list[tuple[str, float, str]]) -> str:
    cells: dict[tuple[str, float], list[bool]] = defaultdict(list)
    for kind, strength, decided in rows:
        cells[(kind, strength)].append(decided == SCENARIO_KINDS[kind])
    lines = []
    for kind, strengths in STRENGTHS.items():
        parts = [f"{s:g}: {np.mean(cells[(kind, s)]):.0%}" for s in strengths if cells[(kind, s)]]
        lines.append(f"  {kind:22s} " + "   ".join(parts))
    return "\n".join(lines)


def measure(kind: str, strength: float, seed: int, index_kind: str) -> dict[str, float]:
    """Every metric of one check: distribution drift, structure, index health and scores."""
    return check_values(generate_scenario(kind, strength, seed), index_kind=index_kind, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds per kind and strength (default 8)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="first scenario seed, to check results on seeds not looked at (default 0)")
    parser.add_argument("--index-kind", default="hnsw", choices=("hnsw", "faiss-hnsw", "exact"))
    parser.add_argument("--values", type=Path,
                        help="JSON cache of the measured values: read if it exists (for the same seeds "
                             "and index kind), else written")
    parser.add_argument("--persist", type=int, default=2,
                        help="consecutive checks that saw the same values, for the policy (default 2: "
                             "the shipped policy's retrain rules need two)")
    parser.add_argument("--policy", type=Path,
                        default=Path(__file__).resolve().parents[1] / "policies" / "recommender-default.yaml")
    args = parser.parse_args(argv)

    decide_by_policy = policy_decider(args.policy, args.persist) if args.policy.exists() else None
    grid = scenario_grid(args.seeds, first_seed=args.first_seed)
    started = time.perf_counter()
    run = {"seeds": args.seeds, "first_seed": args.first_seed, "index_kind": args.index_kind}
    if args.values and args.values.exists():
        cached = json.loads(args.values.read_text())
        if cached.get("run") != run:
            parser.error(f"{args.values} holds measurements of {cached.get('run')}, not of {run}")
        measured = [(kind, strength, values) for kind, strength, values in cached["scenarios"]]
    else:
        measured = [(kind, strength, measure(kind, strength, seed, args.index_kind)) for kind, strength, seed in grid]
        if args.values:
            args.values.write_text(json.dumps({"run": run, "scenarios": measured}))
    elapsed = time.perf_counter() - started

    cells = sum(map(len, STRENGTHS.values()))
    print(f"{len(measured)} scenarios ({args.seeds} seeds from {args.first_seed} x {cells} kind/strength cells), "
          f"index kind {args.index_kind}, {elapsed:.0f} s ({elapsed / len(measured):.2f} s per scenario)\n")
    deciders = [("PROVISIONAL rule (metric meanings, not a policy)", provisional_rule)]
    if decide_by_policy is not None:
        deciders.insert(0, (f"policy {args.policy.name}, {args.persist} consecutive check(s)", decide_by_policy))
    else:
        print(f"policy file {args.policy} not found: not evaluated\n")
    for title, decide in deciders:
        decided = [(kind, strength, decide(values)) for kind, strength, values in measured]
        print(f"== {title}")
        print(confusion_table([(SCENARIO_KINDS[kind], action) for kind, _, action in decided]))
        print("accuracy per kind and strength:")
        print(per_cell_accuracy(decided) + "\n")
    print("== per-kind metric distributions (min/median/max)")
    print(distribution_table(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
