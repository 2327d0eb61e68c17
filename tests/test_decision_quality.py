"""The counterfactual MovieLens decision benchmark (benchmarks/decision_quality.py) in its --quick form:
version 2 on its first 4 served windows, one faulty copy of each kind. Checks that the oracle gives
the faults their meaning, that the item tower reproduces the version, and that a seed fixes the JSON.
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


@pytest.fixture(scope="module")
def quick() -> dict:
    return json.loads(json.dumps(decision_quality.run(seed=0, quick=True)))


def _case(result: dict, fault: str) -> dict:
    return next(c for c in result["cases"] if c["fault"] == fault)


def test_json_has_the_keys_and_one_case_per_fault(quick):
    keys = {"accuracy", "retrains_where_oracle_none", "windows", "confusion", "actions_present",
            "retrain_precision", "split", "cases"}
    assert keys <= set(quick)
    for split in ("development", "held_out"):
        assert keys - {"split", "cases"} <= set(quick["split"][split])
    assert quick["windows"] == 4 and len(quick["cases"]) == 8
    assert sorted(c["fault"] for c in quick["cases"] if c["fault"]) == sorted(world.FAULTS)
    assert quick["actions_present"] == sorted({c["oracle"] for c in quick["cases"]})
    assert sum(n for row in quick["confusion"].values() for n in row.values()) == len(quick["cases"])
    for case in quick["cases"]:
        assert set(case["repairs"]) == set(world.REPAIRS) and case["action"] in world.REPAIRS


def test_permuted_axes_is_a_recalibration(quick):
    case = _case(quick, "permuted_axes")
    assert case["oracle"] == "recalibrate"
    none, recalibrate = case["repairs"]["none"], case["repairs"]["recalibrate"]
    # queries in the version's axes against a permuted catalogue rank close to at random
    assert none["recall"] < 0.5 * recalibrate["recall"]
    assert recalibrate["z"] >= world.SIGNIFICANT_Z


@pytest.mark.xfail(strict=True, reason="most hits fall on a few blockbusters, which a random half index "
                   "often keeps: at v2 w16 the refresh gains 0.0008 recall (z 0.32), retrain is the label")
def test_partial_index_is_an_index_refresh(quick):
    """The fault's meaning; the oracle disagrees here (1 of 8 partial_index cases of the full run agree)."""
    assert _case(quick, "partial_index")["oracle"] == "refresh-index"


def test_partial_index_never_beats_its_refresh(quick):
    repairs = _case(quick, "partial_index")["repairs"]
    assert repairs["refresh-index"]["recall"] >= repairs["none"]["recall"]


def test_item_tower_at_the_cutoff_reproduces_the_version(quick):
    tower = quick["versions"]["2"]["tower_at_cutoff"]
    assert tower["same_ids"] == 1.0
    assert tower["relative_error"] <= world.TOWER_TOLERANCE["relative_error"]
    assert tower["share_cosine_0.99"] >= world.TOWER_TOLERANCE["share_cosine_0.99"]


def test_oracle_takes_the_cheapest_repair_not_significantly_below_the_best():
    rng = np.random.default_rng(0)
    n = 2000
    none = rng.binomial(1, 0.05, n).astype(float)
    better = np.maximum(none, rng.binomial(1, 0.05, n))      # about twice none's recall
    best = np.maximum(better, rng.binomial(1, 0.1, n))       # clearly above it
    recalls = {"none": none, "refresh-index": better, "recalibrate": none.copy(), "retrain": better.copy()}
    assert world.oracle(recalls).label == "refresh-index"   # retrain ties it: the cheaper one
    assert world.oracle({**recalls, "retrain": best}).label == "retrain"
    assert world.oracle({name: none.copy() for name in world.REPAIRS}).label == "none"
    nan_rows = {name: np.concatenate([r, [np.nan]]) for name, r in recalls.items()}
    assert world.oracle(nan_rows).n == n                      # requests with no liked target drop out


@pytest.mark.slow
def test_the_same_seed_gives_the_same_json(quick):
    out = subprocess.run([sys.executable, str(BENCHMARKS / "decision_quality.py"), "--quick", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == quick
