"""The counterfactual MovieLens decision benchmark (benchmarks/decision_quality.py) in its --quick form:
version 2's cutoff window with every fault, and the window after. Checks that the oracle gives the
faults and the cutoff window their meaning decisively, that its inference is clustered by user and
three-way, that the item tower reproduces the version, and that a seed fixes the JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _decision_world as world  # noqa: E402
import decision_quality  # noqa: E402

FAULT_REPAIRS = {"stale_previous_index": "refresh-index", "partial_index": "refresh-index",
                 "unaligned_refit": "recalibrate", "permuted_axes": "recalibrate"}


@pytest.fixture(scope="module")
def quick() -> dict:
    return json.loads(json.dumps(decision_quality.run(seed=0, quick=True)))


def _case(result: dict, fault: str | None, window: str = "w12") -> dict:
    return next(c for c in result["cases"] if c["fault"] == fault and c["window_id"] == window)


def test_json_has_the_keys_and_every_fault_in_the_cutoff_window(quick):
    keys = {"accuracy", "accuracy_undecidable_as_wrong", "retrains_where_oracle_none", "windows", "confusion",
            "actions_present", "undecidable", "decidable", "retrain_precision", "split", "cases"}
    assert keys <= set(quick)
    for split in ("development", "held_out"):
        assert keys - {"split", "cases"} <= set(quick["split"][split])
    assert quick["windows"] == 2 and len(quick["cases"]) == 2 + len(world.FAULTS)
    assert sorted(c["fault"] for c in quick["cases"] if c["fault"]) == sorted(world.FAULTS)
    assert {c["window_id"] for c in quick["cases"] if c["fault"]} == {"w12"}
    decisive = {c["oracle"] for c in quick["cases"]} - {"undecidable"}
    assert quick["actions_present"] == sorted(decisive)
    assert sum(n for row in quick["confusion"].values() for n in row.values()) == len(quick["cases"])
    assert quick["decidable"] + quick["undecidable"]["count"] == len(quick["cases"])
    for case in quick["cases"]:
        assert set(case["repairs"]) == set(world.REPAIRS) and case["action"] in world.REPAIRS
        assert case["oracle"] in decision_quality.LABELS


def test_nothing_is_due_in_the_cutoff_window(quick):
    """The refit at the cutoff is the version: every repair is confidently immaterial."""
    case = _case(quick, None)
    assert case["oracle"] == "none"
    assert all(case["repairs"][r]["status"] == "immaterial" for r in world.REPAIRS[1:])


@pytest.mark.parametrize("fault", sorted(FAULT_REPAIRS))
def test_a_fault_on_a_fresh_version_is_labelled_by_its_repair(quick, fault):
    case = _case(quick, fault)
    repair = case["repairs"][FAULT_REPAIRS[fault]]
    assert case["oracle"] == FAULT_REPAIRS[fault]
    assert repair["status"] == "helps" and repair["gain"] >= case["material_gain"]
    # the version is fresh: a retrain is not materially better than the fault's own repair
    assert repair["below_best"] < case["material_gain"]


def test_item_tower_at_the_cutoff_reproduces_the_version(quick):
    tower = quick["versions"]["2"]["tower_at_cutoff"]
    assert tower["same_ids"] == 1.0
    assert tower["relative_error"] <= world.TOWER_TOLERANCE["relative_error"]
    assert tower["share_cosine_0.99"] >= world.TOWER_TOLERANCE["share_cosine_0.99"]


def _clustered(n_users: int = 60, per_user: int = 10,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return np.repeat(np.arange(n_users), per_user), rng.uniform(0.05, 0.15, n_users * per_user), rng


def test_clustered_se_exceeds_the_naive_one_when_a_repair_helps_some_users():
    users, _, rng = _clustered()
    gain = np.repeat(rng.normal(0.0, 0.05, 60), 10) + rng.normal(0.0, 0.01, 600)
    assert world.clustered_se(gain, users) > 2 * world.naive_se(gain)


def test_clustered_se_is_the_naive_one_with_one_request_per_user():
    gain = np.random.default_rng(1).normal(0.0, 0.05, 300)
    assert world.clustered_se(gain, np.arange(300)) == pytest.approx(world.naive_se(gain))


def test_oracle_has_three_labels():
    users, none, rng = _clustered()
    same = {name: none.copy() for name in world.REPAIRS}
    assert world.oracle(same, users).label == "none"
    helped = none + 0.05
    assert world.oracle({**same, "retrain": helped}, users).label == "retrain"
    # a gain of about m with user-level noise as big: neither material nor confidently below it
    noisy = none + np.repeat(rng.normal(0.012, 0.05, 60), 10)
    verdict = world.oracle({**same, "retrain": noisy}, users)
    assert verdict.repairs["retrain"].status == "unclear" and verdict.label == "undecidable"
    nan_rows = {name: np.concatenate([r, [np.nan]]) for name, r in same.items()}
    assert world.oracle(nan_rows, np.append(users, 99)).n == len(users)  # no liked target: dropped


def test_a_cheaper_repair_is_passed_over_only_when_the_best_is_materially_better():
    users, none, rng = _clustered()
    refresh = none + 0.05
    slightly = refresh + 0.002 + rng.normal(0.0, 0.0005, len(none))   # significant, far below m
    recalls = {"none": none, "refresh-index": refresh, "recalibrate": none.copy(), "retrain": slightly}
    verdict = world.oracle(recalls, users)
    assert verdict.repairs["refresh-index"].z_below_best >= world.SIGNIFICANT_Z
    assert verdict.label == "refresh-index"
    assert world.oracle({**recalls, "retrain": refresh + 0.05}, users).label == "retrain"


@pytest.mark.slow
def test_the_same_seed_gives_the_same_json(quick):
    out = subprocess.run([sys.executable, str(BENCHMARKS / "decision_quality.py"), "--quick", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == quick
