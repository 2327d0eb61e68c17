"""Which action is decided on seeded drift scenarios with a known right action? A confusion matrix.

    PYTHONPATH=. python benchmarks/scenario_confusion.py [--seeds 3] [--first-seed 0] [--persist 2] [--json]

Runs every scenario kind at every strength (drift_decider.demo.scenarios: 14 kinds x 3 strengths) for
``--seeds`` seeds, assembles the evidence a real check assembles (``scenarios.scenario_evidence``:
``evidence.assemble.build_evidence`` with the version's sibling noise floor) and decides with the
shipped policy, each scenario seen by ``--persist`` consecutive daily checks of the same drift (the
policy's ``for: 2`` rules need two). Prints the confusion matrix, the accuracy per kind and strength,
the retrains in no-change kinds, and per kind min / median / max of the key metrics. ``--json``
prints one object instead.

It also says which ``retrain`` labels no policy deciding on what users get can reach: a case is
*unreachable* when a no-change case of the same run (a refit, say) changed every retrain signal at
least as much (RETRAIN_EVIDENCE: the fixed queries' top-k after the cheap fix, the neighbourhoods,
the queries left without a match, the items never learned, each raw and in noise units). A policy
that retrains it must retrain that no-change case too, which the acceptance forbids; the ceiling is
the accuracy with every unreachable case missed. This reads the measurements, never the policy.
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

from drift_decider.measure.metric_names import ideal_value
from drift_decider.policy import load_policy
from drift_decider.demo.scenarios import (SCENARIO_KINDS, STRENGTHS, check_values, first_action, generate_scenario,
                                     scenario_grid)

ACTIONS = ("none", "refresh-index", "recalibrate", "retrain")
KEY_METRICS = ("rank.overlap", "rank.overlap_fixed", "rank.overlap_fixed.noise_units", "rank.fix_gain",
               "rank.score_shift", "knn_turnover.noise_units", "queries.off_catalog_share", "index.recall_at_k",
               "index.coverage", "index.stale_share", "domain_classifier.auc", "mmd2.p_value")
NO_CHANGE_KINDS = tuple(kind for kind, action in SCENARIO_KINDS.items() if action == "none")
# what the issue-13 definition of retrain reads (what users get, beyond noise, that no cheap fix restores)
RETRAIN_EVIDENCE = ("rank.overlap_fixed", "rank.overlap_fixed.noise_units", "knn_turnover",
                    "knn_turnover.noise_units", "queries.off_catalog_share", "queries.off_catalog_share.noise_units",
                    "catalog.new_item_share")


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


def _change(values: Mapping[str, float], name: str) -> float | None:
    """How far a retrain signal moved towards a retrain from its no-change value (noise units as they
    are); None if unmeasured. The unmatched-query share counts up from its 0.05 only: fewer unmatched
    queries than the reference had is no reason to retrain."""
    value = values.get(name)
    if value is None or not math.isfinite(value):
        return None
    if name.endswith(".noise_units"):
        return value
    ideal = ideal_value(name) or 0.0
    return value - ideal if name == "queries.off_catalog_share" else abs(value - ideal)


def unreachable_retrains(measured: list[tuple[str, float, dict[str, float]]]) -> list[tuple[int, str]]:
    """(position, "kind@strength" of a no-change case that changed every retrain signal at least as
    much) for each ``retrain``-labelled case that a policy deciding on those signals cannot retrain
    without retraining that no-change case too."""
    no_change = [(f"{kind}@{strength:g}", values) for kind, strength, values in measured
                 if SCENARIO_KINDS[kind] == "none"]
    found = []
    for position, (kind, _, values) in enumerate(measured):
        if SCENARIO_KINDS[kind] != "retrain":
            continue
        ours = {name: _change(values, name) for name in RETRAIN_EVIDENCE}
        for label, other in no_change:
            theirs = {name: _change(other, name) for name in RETRAIN_EVIDENCE}
            compared = [n for n in RETRAIN_EVIDENCE if ours[n] is not None and theirs[n] is not None]
            if compared and all(theirs[n] >= ours[n] for n in compared):
                found.append((position, label))
                break
    return found


def measure(kind: str, strength: float, seed: int, index_kind: str) -> dict[str, float]:
    """Every metric of one check, as the real evidence assembly computes it."""
    return check_values(generate_scenario(kind, strength, seed), index_kind=index_kind, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per kind and strength (default 3)")
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
    parser.add_argument("--json", dest="as_json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)

    decide = policy_decider(args.policy, args.persist)
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
    decided = [(kind, strength, decide(values)) for kind, strength, values in measured]
    pairs = [(SCENARIO_KINDS[kind], action) for kind, _, action in decided]
    no_change_retrains = {kind: sum(1 for k, _, a in decided if k == kind and a == "retrain")
                          for kind in NO_CHANGE_KINDS}
    unreachable = unreachable_retrains(measured)
    out_of_reach = {position for position, _ in unreachable}
    reachable = [e == d for position, (e, d) in enumerate(pairs) if position not in out_of_reach]
    reach = {"unreachable_retrains": len(unreachable),
             "ceiling": 1.0 - len(unreachable) / len(pairs),
             "accuracy_reachable": sum(reachable) / len(reachable) if reachable else None,
             "unreachable": [f"{measured[p][0]}@{measured[p][1]:g} (as much change: {label})"
                             for p, label in unreachable]}
    if args.as_json:
        confusion = Counter(pairs)
        print(json.dumps({**run, "scenarios": len(decided), "seconds": round(elapsed, 1),
                          "accuracy": sum(e == d for e, d in pairs) / len(pairs),
                          "confusion": {e: {d: confusion[(e, d)] for d in ACTIONS} for e in ACTIONS},
                          "retrains_in_no_change_kinds": no_change_retrains, **reach,
                          "per_kind": {kind: float(np.mean([a == SCENARIO_KINDS[kind] for k, _, a in decided
                                                            if k == kind])) for kind in SCENARIO_KINDS}},
                         indent=2))
        return 0
    cells = sum(map(len, STRENGTHS.values()))
    print(f"{len(measured)} scenarios ({args.seeds} seeds from {args.first_seed} x {cells} kind/strength cells), "
          f"index kind {args.index_kind}, {elapsed:.0f} s ({elapsed / len(measured):.2f} s per scenario)\n")
    print(f"== policy {args.policy.name}, {args.persist} consecutive check(s)")
    print(confusion_table(pairs))
    print("retrains in no-change kinds: " + ", ".join(f"{k} {n}" for k, n in no_change_retrains.items()))
    on_the_rest = "-" if reach["accuracy_reachable"] is None else f"{reach['accuracy_reachable']:.1%}"
    print(f"retrain labels out of reach (a no-change case changed every retrain signal as much): "
          f"{len(unreachable)}; ceiling {reach['ceiling']:.1%}; accuracy on the other "
          f"{len(reachable)} cases: {on_the_rest}")
    for line in reach["unreachable"]:
        print(f"  {line}")
    print("accuracy per kind and strength:")
    print(per_cell_accuracy(decided) + "\n")
    print("== per-kind metric distributions (min/median/max)")
    print(distribution_table(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
