"""Does the policy take the repair that restores quality? A counterfactual MovieLens benchmark.

    python benchmarks/decision_quality.py [--json] [--quick] [--seed 0] [--policy FILE] [--starts 6,12,18]

Replays a production recommender on MovieLens, each version served from its cutoff, with faults
injected into copies of each version's first served window (the world and the oracle:
``_decision_world``, whose docstring fixes the label rule; why: docs/decision-quality.md). Every
repair is scored counterfactually by recall@50 on the window's real requests, with standard errors
clustered by user; the oracle says a repair, ``none`` (every repair confidently immaterial) or
``undecidable``. Its label is compared with what drift-decider decides from what a check sees:

- reference: the version's item factors with ids, its reference queries (the two windows before
  its cutoff) and a noise floor from 3 sibling refits (80 % of the training users, seeds 1-3,
  aligned onto the version);
- current: the served catalogue (ids and vectors) as the embeddings and the catalogue, the
  window's queries from the version's tower, and the serving index;
- ``build_evidence`` then ``policy.evaluate``, one version at a time in window order; each natural
  window's record joins the history the next check reads, decisions are not acted on (as in the
  study); a faulty copy is decided on the history of the natural windows before it and does not
  join it.

Accuracy and retrains where the oracle says ``none`` are counted on decidable cases; undecidable
cases are counted apart with the decisions taken on them.

``--quick`` plays version 2 only (version 1 exists for its stale index) on its first 2 served
windows: the cutoff window with every fault, and the next. What the test suite runs.
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
from _decision_world import (REPAIRS, ServedState, Verdict, Version, Window, World, faults,  # noqa: E402
                             oracle, utc)

from drift_decider.evidence.assemble import (CurrentData, ReferenceData, build_evidence,  # noqa: E402
                                            measure_noise)
from drift_decider.inputs.embeddings import EmbeddingSet  # noqa: E402
from drift_decider.policy import CheckRecord, Decision, Policy, evaluate, load_policy  # noqa: E402
from drift_decider.policy.replay import decide_series  # noqa: E402
from drift_decider.cli.table import fmt, render_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "policies" / "recommender-default.yaml"
MODEL_NAME = "movielens-svd"
QUICK = {"played": (2,), "served": 2, "starts": (6, 12)}
LABELS = REPAIRS + ("undecidable",)


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
        repairs = {name: {"recall": _num(s.recall), "gain": _num(s.gain), "se": _num(s.se),
                          "naive_se": _num(s.naive_se), "z": _num(s.z), "below_best": _num(s.below_best),
                          "z_below_best": _num(s.z_below_best), "status": s.status}
                   for name, s in self.verdict.repairs.items()}
        return {"version": self.version, "split": self.split, "window": self.window,
                "window_id": self.window_id, "month": self.label, "fault": self.fault,
                "oracle": self.verdict.label, "n_evaluated": self.verdict.n, "users": self.verdict.users,
                "material_gain": _num(self.verdict.threshold), "repairs": repairs,
                "action": self.action, "rule": self.rule, "explanation": self.explanation}


def reference_data(world: World, version: Version, seed: int) -> ReferenceData:
    """What the version registered: item factors with ids, validation queries, the siblings' noise floor."""
    items = version.items
    reference = ReferenceData.from_arrays(items.vectors, items.ids, version.queries, seed=seed)
    return replace(reference, noise=measure_noise(reference, list(world.siblings(version)), seed=seed))


def check_values(reference: ReferenceData, state: ServedState, queries: np.ndarray, data_growth: float, now,
                 seed: int) -> dict[str, float]:
    catalog = EmbeddingSet(Path("served-catalog"), state.catalog.vectors, state.catalog.ids)
    current = CurrentData(catalog, queries=EmbeddingSet(Path("served-queries"), queries), index=state.index,
                          data_growth=float(data_growth))
    return build_evidence(reference, current, seed=seed, now=now).values()


def play(world: World, policy: Policy, *, seed: int, played: tuple[int, ...] | None = None,
         served: int | None = None, log=lambda text: None) -> list[Case]:
    """Every (window, fault) case of the played versions, labelled by the oracle and decided by the policy.

    The natural windows of a version are decided in turn by the policy's replay loop, each joining the
    history of the next; a window's injected faults are decided on the same state as its natural check."""
    cases: list[Case] = []
    for version in world.versions:
        if played is not None and version.number not in played:
            continue
        reference = reference_data(world, version, seed)
        windows = version.served[:served]
        states: dict[str, ServedState] = {}     # a natural window's, until its oracle has read it

        def natural_checks():
            for window in windows:
                states[window.window_id], values = _observe(world, reference, version, window, None, seed)
                yield CheckRecord(window.window_id, utc(window.end), values), _context(version, window, None)

        for window, step in zip(windows, decide_series(policy, natural_checks())):
            natural = _case(world, version, window, None, states.pop(window.window_id), step.decision)
            faulty = []
            for fault in faults(version) if window is version.served[0] else ():
                state, values = _observe(world, reference, version, window, fault, seed)
                decision = evaluate(policy, values, step.state, utc(window.end),
                                    context=_context(version, window, fault))
                faulty.append(_case(world, version, window, fault, state, decision))
            for case in (natural, *faulty):
                cases.append(case)
                log(f"v{case.version} {case.window_id} {case.fault or 'natural':20} "
                    f"oracle {case.verdict.label:13} decided {case.action}")
    return cases


def _observe(world: World, reference: ReferenceData, version: Version, window: Window, fault: str | None,
             seed: int) -> tuple[ServedState, dict[str, float]]:
    """The window as served (``fault`` None) or with the fault injected, and what a check of it measures."""
    state = world.healthy(version, window) if fault is None else world.faulty(version, window, fault)
    queries, _ = world.queries(version, window)
    return state, check_values(reference, state, queries, world.data_growth(version, window), utc(window.end), seed)


def _context(version: Version, window: Window, fault: str | None) -> dict[str, str]:
    context = {"model": MODEL_NAME, "version": str(version.number), "window_id": window.window_id}
    return context | ({"fault": fault} if fault else {})


def _case(world: World, version: Version, window: Window, fault: str | None, state: ServedState,
          decision: Decision) -> Case:
    """One decided check of the window, labelled by the oracle."""
    verdict = oracle(world.repair_recalls(version, window, state), world.window_requests(window).users)
    return Case(version.number, version.split, window.index, window.window_id, window.label, fault, verdict,
                decision.action, decision.rule_id, decision.explanation)


def summarise(cases: list[Case]) -> dict[str, Any]:
    """Accuracy on decidable cases, the confusion matrix (oracle x decision), the undecidable cases apart."""
    pairs = [(c.verdict.label, c.action) for c in cases]
    decidable = [(label, action) for label, action in pairs if label != "undecidable"]
    confusion: dict[str, dict[str, int]] = {}
    for (label, action), count in sorted(Counter(pairs).items()):
        confusion.setdefault(label, {})[action] = count
    retrains = [label for label, action in decidable if action == "retrain"]
    undecided = [action for label, action in pairs if label == "undecidable"]
    return {
        "n_cases": len(cases),
        "windows": sum(c.fault is None for c in cases),
        "decidable": len(decidable),
        "accuracy": _share([a == b for a, b in decidable]),
        "accuracy_undecidable_as_wrong": _share([a == b for a, b in pairs]),
        "retrains_where_oracle_none": sum(label == "none" for label in retrains),
        "retrain_precision": _share([label == "retrain" for label in retrains]),
        "undecidable": {"count": len(undecided), "decisions": dict(sorted(Counter(undecided).items()))},
        "confusion": confusion,
        "actions_present": sorted({label for label, _ in decidable}),
        "oracle_labels": {"natural": _labels(c for c in cases if c.fault is None),
                          "faults": {f: _labels(c for c in cases if c.fault == f)
                                     for f in sorted({c.fault for c in cases if c.fault})}},
        "payoff": payoff(cases),
    }


def _labels(cases) -> dict[str, int]:
    return dict(sorted(Counter(c.verdict.label for c in cases).items()))


def _share(flags: list[bool]) -> float | None:
    return _num(np.mean(flags)) if flags else None


def payoff(cases: list[Case]) -> dict[str, Any]:
    """Mean recall@50 over the cases had each case followed a rule, and how the decided actions paid off:
    the oracle's labels need a material, significant gain in one window, this counts every gain."""
    def mean_recall(choose) -> float | None:
        return _num(np.mean([c.verdict.repairs[choose(c)].recall for c in cases])) if cases else None

    acted = [c for c in cases if c.action != "none"]
    return {
        "recall_as_served": mean_recall(lambda c: "none"),
        "recall_following_decisions": mean_recall(lambda c: c.action),
        "recall_always_retrain": mean_recall(lambda c: "retrain"),
        "actions_taken": len(acted),
        "actions_with_a_gain": sum(c.verdict.repairs[c.action].gain > 0 for c in acted),
        "actions_that_help": sum(c.verdict.repairs[c.action].status == "helps" for c in acted),
    }


def run(*, seed: int = 0, quick: bool = False, policy_path: Path = DEFAULT_POLICY,
        starts: tuple[int, ...] = world_mod.VERSION_STARTS, log=lambda text: None) -> dict[str, Any]:
    starts = QUICK["starts"] if quick else starts
    world = World(seed, starts)
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
        "config": {"seed": seed, "quick": quick, "starts": list(starts), "policy": str(policy_path),
                   "policy_version": policy.version,
                   "k": world_mod.K, "material_share": world_mod.MATERIAL_SHARE,
                   "material_abs": world_mod.MATERIAL_ABS, "significant_z": world_mod.SIGNIFICANT_Z,
                   "tower_tolerance": world_mod.TOWER_TOLERANCE,
                   "min_training_ratings": world_mod.MIN_TRAINING_RATINGS},
        "cases": [c.to_dict() for c in cases],
    }


def text_report(result: dict[str, Any]) -> str:
    """The summary blocks (pooled, development, held-out, natural, faults), then one row per case."""
    blocks = (("pooled", result), ("development (cutoffs 6, 12, 18)", result["split"]["development"]),
              ("held-out (other cutoffs)", result["split"]["held_out"]),
              ("natural windows", result["by_kind"]["natural"]), ("faults", result["by_kind"]["faults"]))
    out = []
    for title, block in blocks:
        out += _block(title, block)
    rows = [[f"v{c['version']}", c["window_id"], c["month"], c["fault"] or "-", c["oracle"]]
            + [f"{c['repairs'][r]['recall']:.4f}" + ("" if r == "none" else
               f" ({fmt(c['repairs'][r]['z'])} {c['repairs'][r]['status']})") for r in REPAIRS]
            + [c["action"], c["rule"] or "-"] for c in result["cases"]]
    out.append(render_table(["version", "window", "month", "fault", "oracle"]
                            + [f"{r} r@{world_mod.K} (z status)" for r in REPAIRS] + ["decided", "rule"], rows))
    return "\n".join(out)


def _block(title: str, block: dict[str, Any]) -> list[str]:
    confusion, pay, undecidable = block["confusion"], block["payoff"], block["undecidable"]
    rows = [[label] + [str(confusion.get(label, {}).get(a, 0)) for a in REPAIRS] for label in LABELS]
    return [f"{title}: {block['n_cases']} cases ({block['windows']} windows), {block['decidable']} decidable: "
            f"accuracy {fmt(block['accuracy'])} (undecidable as wrong {fmt(block['accuracy_undecidable_as_wrong'])}),"
            f" retrains where the oracle says none {block['retrains_where_oracle_none']}, retrain precision "
            f"{fmt(block['retrain_precision'])}; undecidable {undecidable['count']} decided "
            f"{json.dumps(undecidable['decisions'])}; oracle labels {json.dumps(block['oracle_labels'])}",
            f"  mean recall@{world_mod.K}: as served {fmt(pay['recall_as_served'])}, following the decisions "
            f"{fmt(pay['recall_following_decisions'])}, always retraining {fmt(pay['recall_always_retrain'])}; "
            f"{pay['actions_taken']} actions, {pay['actions_with_a_gain']} with a gain, "
            f"{pay['actions_that_help']} that help", render_table(["oracle \\ decided"] + list(REPAIRS), rows), ""]


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


def _starts(text: str) -> tuple[int, ...]:
    """Cutoff windows, increasing, each with its two reference windows before it and a window to serve."""
    try:
        starts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give window numbers separated by commas, e.g. 8,14,20") from None
    if (list(starts) != sorted(set(starts)) or starts[0] < world_mod.REFERENCE_WINDOWS
            or starts[-1] >= world_mod.N_WINDOWS):
        raise argparse.ArgumentTypeError(f"{text!r}: increasing windows from {world_mod.REFERENCE_WINDOWS} to "
                                         f"{world_mod.N_WINDOWS - 1}")
    return starts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="version 2, 2 windows, every fault in the first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    parser.add_argument("--starts", type=_starts, default=world_mod.VERSION_STARTS, metavar="W,W,W",
                        help=f"the versions' cutoff windows, of {world_mod.N_WINDOWS}; cutoffs other than the "
                             "default 6,12,18 (development) are held out, e.g. 8,14,20")
    args = parser.parse_args(argv)
    if args.quick and args.starts != world_mod.VERSION_STARTS:
        parser.error("--quick plays its own cutoffs (6, 12); leave out --starts")
    started = time.monotonic()
    result = run(seed=args.seed, quick=args.quick, policy_path=args.policy, starts=args.starts,
                 log=lambda text: print(text, file=sys.stderr))
    print(json.dumps(result, indent=1, sort_keys=True) if args.json else text_report(result))
    print(f"done in {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
