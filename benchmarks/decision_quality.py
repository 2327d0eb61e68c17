"""Does the policy take the repair that restores quality? A counterfactual MovieLens benchmark.

    python benchmarks/decision_quality.py [--json] [--quick] [--seed 0] [--policy FILE]

Replays a production recommender on MovieLens with faults injected into copies of its served
windows (the world and the oracle: ``_decision_world``, whose docstring fixes the label rule),
scores every repair counterfactually by recall@10 on the window's real requests, and compares the
oracle's label with what drift-decider decides from what a check sees:

- reference: the version's item factors with ids, its validation queries and a noise floor from 3
  sibling refits (80 % of the training users, seeds 1-3, aligned onto the version);
- current: the served catalogue (ids and vectors) as the embeddings and the catalogue, the
  window's queries from the version's tower, and the serving index;
- ``build_evidence`` then ``policy.evaluate``, one version at a time in window order; each natural
  window's record joins the history the next check reads, decisions are not acted on (as in the
  study); a faulty copy is decided on the history of the natural windows before it and does not
  join it.

``--quick`` plays version 2 only (version 1 exists for its stale index), on its first 4 served
windows, one faulty copy of each kind: what the test suite runs. On the 2-core machine at load 3-4
the full run (60 cases) took 2 min 50 s to 4 min of wall time, ``--quick`` about 30 s.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _decision_world as world_mod  # noqa: E402
from _decision_world import (REPAIRS, ServedState, Verdict, Version, Window, World, fault_plan,  # noqa: E402
                             oracle, utc)

from drift_decider.evidence_builder import (CurrentData, ReferenceData, build_evidence,  # noqa: E402
                                            measure_noise)
from drift_decider.loading import EmbeddingSet  # noqa: E402
from drift_decider.policy import CheckRecord, History, Policy, evaluate, load_policy  # noqa: E402
from drift_decider.table import fmt, render_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "policies" / "recommender-default.yaml"
MODEL_NAME = "movielens-svd"
QUICK = {"played": (2,), "served": 4, "starts": (6, 12)}


@dataclass(frozen=True)
class Case:
    version: int
    split: str
    window: int
    window_id: str
    label: str            # the window's month
    fault: str | None     # None: the natural window
    verdict: Verdict
    action: str
    rule: str | None
    explanation: str | None   # the deciding rule's explanation, with the values it read

    def to_dict(self) -> dict[str, Any]:
        repairs = {name: {"recall": _num(s.recall), "gain": _num(s.gain), "z": _num(s.z),
                          "z_below_best": _num(s.z_below_best)} for name, s in self.verdict.repairs.items()}
        return {"version": self.version, "split": self.split, "window": self.window,
                "window_id": self.window_id, "month": self.label, "fault": self.fault,
                "oracle": self.verdict.label, "n_evaluated": self.verdict.n, "repairs": repairs,
                "action": self.action, "rule": self.rule, "explanation": self.explanation}


def reference_data(world: World, version: Version, seed: int) -> ReferenceData:
    """What the version registered: item factors with ids, validation queries, the siblings' noise floor."""
    items = version.items
    reference = ReferenceData.from_arrays(items.vectors, items.ids, version.queries, seed=seed)
    return replace(reference, noise=measure_noise(reference, list(world.siblings(version)), seed=seed))


def check_values(reference: ReferenceData, state: ServedState, queries: np.ndarray, now, seed: int
                 ) -> dict[str, float]:
    catalog = EmbeddingSet(Path("served-catalog"), state.catalog.vectors, state.catalog.ids)
    current = CurrentData(catalog, queries=EmbeddingSet(Path("served-queries"), queries), index=state.index)
    return build_evidence(reference, current, seed=seed, now=now).values()


def play(world: World, policy: Policy, *, seed: int, played: tuple[int, ...] | None = None,
         served: int | None = None, log=lambda text: None) -> list[Case]:
    """Every (window, fault) case of the played versions, labelled by the oracle and decided by the policy."""
    cases: list[Case] = []
    for version in world.versions:
        if played is not None and version.number not in played:
            continue
        reference = reference_data(world, version, seed)
        history = History()
        windows = version.served[:served]
        for window, fault in zip(windows, fault_plan(version, seed)):
            natural, values = _case(world, policy, reference, history, version, window, None, seed)
            faulty, _ = _case(world, policy, reference, history, version, window, fault, seed)
            for case in (natural, faulty):
                cases.append(case)
                log(f"v{case.version} {case.window_id} {case.fault or 'natural':20} "
                    f"oracle {case.verdict.label:13} decided {case.action}")
            now = utc(window.end)
            history = history.append(CheckRecord(window.window_id, now, values, natural.action, natural.rule,
                                                 now, policy.mode))
    return cases


def _case(world: World, policy: Policy, reference: ReferenceData, history: History, version: Version,
          window: Window, fault: str | None, seed: int) -> tuple[Case, dict[str, float]]:
    """One check of the window as served (``fault`` None) or with the fault injected, and its oracle label."""
    now = utc(window.end)
    state = world.healthy(version, window) if fault is None else world.faulty(version, window, fault)
    queries, _ = world.queries(version, window)
    values = check_values(reference, state, queries, now, seed)
    context = {"model": MODEL_NAME, "version": str(version.number), "window_id": window.window_id}
    decision = evaluate(policy, values, history, now, context=context | ({"fault": fault} if fault else {}))
    verdict = oracle(world.repair_recalls(version, window, state))
    case = Case(version.number, version.split, window.index, window.window_id, window.label, fault, verdict,
                decision.action, decision.rule_id, decision.explanation)
    return case, values


def summarise(cases: list[Case]) -> dict[str, Any]:
    """Accuracy, the confusion matrix and the oracle's label counts of a set of cases."""
    pairs = [(c.verdict.label, c.action) for c in cases]
    confusion: dict[str, dict[str, int]] = {}
    for (label, action), count in sorted(Counter(pairs).items()):
        confusion.setdefault(label, {})[action] = count
    retrains = [label for label, action in pairs if action == "retrain"]
    natural = Counter(c.verdict.label for c in cases if c.fault is None)
    faults: dict[str, Counter] = {}
    for c in cases:
        if c.fault is not None:
            faults.setdefault(c.fault, Counter())[c.verdict.label] += 1
    return {
        "n_cases": len(cases),
        "windows": sum(c.fault is None for c in cases),
        "accuracy": _num(np.mean([a == b for a, b in pairs])) if pairs else None,
        "retrains_where_oracle_none": sum(label == "none" for label in retrains),
        "retrain_precision": _num(retrains.count("retrain") / len(retrains)) if retrains else None,
        "confusion": confusion,
        "actions_present": sorted({label for label, _ in pairs}),
        "oracle_labels": {"natural": dict(sorted(natural.items())),
                          "faults": {f: dict(sorted(faults[f].items())) for f in sorted(faults)}},
        "payoff": payoff(cases),
    }


def payoff(cases: list[Case]) -> dict[str, Any]:
    """Mean recall@10 over the cases had each case followed a rule, and how the decided actions paid off:
    the oracle's labels need a significant gain in one window, this counts every gain, however small."""
    def mean_recall(choose) -> float | None:
        return _num(np.mean([c.verdict.repairs[choose(c)].recall for c in cases])) if cases else None

    acted = [c for c in cases if c.action != "none"]
    return {
        "recall_as_served": mean_recall(lambda c: "none"),
        "recall_following_decisions": mean_recall(lambda c: c.action),
        "recall_following_oracle": mean_recall(lambda c: c.verdict.label),
        "recall_always_retrain": mean_recall(lambda c: "retrain"),
        "actions_taken": len(acted),
        "actions_with_a_gain": sum(c.verdict.repairs[c.action].gain > 0 for c in acted),
        "actions_with_a_significant_gain": sum(c.verdict.repairs[c.action].z >= world_mod.SIGNIFICANT_Z
                                               for c in acted),
    }


def run(*, seed: int = 0, quick: bool = False, policy_path: Path = DEFAULT_POLICY, log=lambda text: None
        ) -> dict[str, Any]:
    world = World(seed, QUICK["starts"] if quick else world_mod.VERSION_STARTS)
    policy = load_policy(policy_path)
    cases = play(world, policy, seed=seed, played=QUICK["played"] if quick else None,
                 served=QUICK["served"] if quick else None, log=log)
    played = sorted({c.version for c in cases})
    versions = {str(v.number): {"cutoff": utc(v.model.cutoff).isoformat(), "items": len(v.model.item_ids),
                                "tower_at_cutoff": _tower(world, v)}
                for v in world.versions if v.number in played}
    return {
        **summarise(cases),
        "split": {name: summarise([c for c in cases if c.split == name])
                  for name in ("development", "held_out")},
        "by_kind": {"natural": summarise([c for c in cases if c.fault is None]),
                    "faults": summarise([c for c in cases if c.fault is not None])},
        "versions": versions,
        "config": {"seed": seed, "quick": quick, "policy": str(policy_path), "policy_version": policy.version,
                   "tower_tolerance": world_mod.TOWER_TOLERANCE,
                   "min_training_ratings": world_mod.MIN_TRAINING_RATINGS},
        "cases": [c.to_dict() for c in cases],
    }


def text_report(result: dict[str, Any]) -> str:
    actions = list(REPAIRS)
    blocks = (("pooled", result), ("development (version 1)", result["split"]["development"]),
              ("held-out (versions 2-3)", result["split"]["held_out"]),
              ("natural windows", result["by_kind"]["natural"]), ("faults", result["by_kind"]["faults"]))
    out = []
    for title, block in blocks:
        confusion, labels = block["confusion"], json.dumps(block["oracle_labels"], sort_keys=True)
        rows = [[label] + [str(confusion.get(label, {}).get(a, 0)) for a in actions] for label in actions]
        pay = block["payoff"]
        out += [f"{title}: {block['n_cases']} cases, accuracy {fmt(block['accuracy'])}, retrains where the "
                f"oracle says none {block['retrains_where_oracle_none']}, retrain precision "
                f"{fmt(block['retrain_precision'])}; oracle labels {labels}",
                f"  mean recall@10: as served {fmt(pay['recall_as_served'])}, following the decisions "
                f"{fmt(pay['recall_following_decisions'])}, following the oracle {fmt(pay['recall_following_oracle'])}"
                f", always retraining {fmt(pay['recall_always_retrain'])}; {pay['actions_taken']} actions, "
                f"{pay['actions_with_a_gain']} with a gain, {pay['actions_with_a_significant_gain']} significant",
                render_table(["oracle \\ decided"] + actions, rows), ""]
    rows = [[f"v{c['version']}", c["window_id"], c["month"], c["fault"] or "-", c["oracle"]]
            + [f"{c['repairs'][r]['recall']:.4f} ({fmt(c['repairs'][r]['z'])})" for r in REPAIRS]
            + [c["action"], c["rule"] or "-"] for c in result["cases"]]
    out.append(render_table(["version", "window", "month", "fault", "oracle"]
                            + [f"{r} recall (z)" for r in REPAIRS] + ["decided", "rule"], rows))
    return "\n".join(out)


def _tower(world: World, version: Version) -> dict[str, float | None]:
    return {name: _num(value) for name, value in world.tower_reproduction(version).items()}


def _num(value: float) -> float | None:
    """JSON-safe and stable: 6 significant digits, None for NaN, +-1e308 for infinities."""
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return math.copysign(1e308, value)
    return float(f"{value:.6g}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="version 2, 4 windows, one case per fault")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = run(seed=args.seed, quick=args.quick, policy_path=args.policy,
                 log=lambda text: print(text, file=sys.stderr))
    print(json.dumps(result, indent=1, sort_keys=True) if args.json else text_report(result))
    print(f"done in {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
