"""A check refuses inputs that would make its decision about something else (issue 15, #2 and #3): ids
that match too few of the reference's items, and a window id re-used with different data. It names
what it did not measure, and passes on what it is told (the data growth, issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drift_decider import api
from support import POLICY, check_args, movielens_items, register_with_reference, run_cli, write_items


def test_ids_matching_few_reference_items_are_refused_naming_both_sides(tmp_path: Path, sqlite_uri: str) -> None:
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    renumbered = write_items(tmp_path / "renumbered.npz", ids + 10_000_000, vectors)   # another id column
    result = run_cli(*check_args(sqlite_uri, version, renumbered), expect=2)
    assert "renumbered.npz" in result.output and "0.0% of its ids are items the version learned" in result.output
    assert repr(int(ids[0])) in result.output and repr(int(ids[0]) + 10_000_000) in result.output
    assert "--allow-id-mismatch" in result.output
    assert json.loads(run_cli("history", "--model", "recsys", "--tracking-uri", sqlite_uri, "--json").output) == []
    outcome = api.check("recsys", renumbered, POLICY, version=version, tracking_uri=sqlite_uri, window_id="w1",
                        window_end="2026-07-01T00:00:00Z", allow_id_mismatch=True)
    assert outcome.values["catalog.new_item_share"] == 1.0      # opted out: every item is new, and it says so


def test_half_the_catalogue_renewed_is_still_checked(tmp_path: Path, sqlite_uri: str) -> None:
    """The refusal is for another id space, not for a catalogue that changed (60 % of the items kept), nor
    for a window that holds a few of the catalogue's items."""
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    kept = int(len(ids) * 0.6)
    renewed = np.concatenate([ids[:kept], ids[kept:] + 10_000_000])
    outcome = json.loads(run_cli(*check_args(sqlite_uri, version, write_items(tmp_path / "cur.npz", renewed,
                                                                                 vectors))).output)
    assert abs(outcome["metrics"]["catalog.new_item_share"] - 0.4) < 0.01
    few = json.loads(run_cli(*check_args(sqlite_uri, version, write_items(tmp_path / "few.npz", ids[:50],
                                                                             vectors[:50]), "w2")).output)
    assert few["metrics"]["catalog.new_item_share"] == 0.0


def test_a_window_id_reused_with_other_data_is_refused_with_both_digests(tmp_path: Path, sqlite_uri: str) -> None:
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    first = json.loads(run_cli(*check_args(sqlite_uri, version, write_items(tmp_path / "a.npz", ids,
                                                                               vectors * 1.1))).output)
    again = json.loads(run_cli(*check_args(sqlite_uri, version, tmp_path / "a.npz")).output)
    assert again["already_recorded"] is True and again["decision_id"] == first["decision_id"]
    other = write_items(tmp_path / "b.npz", ids, vectors * 1.2)
    result = run_cli(*check_args(sqlite_uri, version, other), expect=2)
    recorded = api.history("recsys", tracking_uri=sqlite_uri)
    assert len(recorded) == 1 and "was decided on other data" in result.output
    assert "a.npz" in result.output and "--window-id" in result.output


def test_the_decision_record_names_the_evidence_it_did_not_see(tmp_path: Path, sqlite_uri: str) -> None:
    version, _ = register_with_reference(sqlite_uri, tmp_path)      # ids, no queries, no siblings, no index
    ids, vectors = movielens_items()
    outcome = json.loads(run_cli(*check_args(sqlite_uri, version, write_items(tmp_path / "a.npz", ids,
                                                                                 vectors))).output)
    missing = outcome["decision"]["inputs"]["context"]["not_measured"]
    assert outcome["not_measured"] == missing
    for family in ("rankings:", "queries:", "scores:", "index:", "data:", "noise floor:"):
        assert family in missing
    assert "structure:" not in missing and "reference set --queries" in missing


def test_data_growth_is_logged_and_a_version_behind_its_data_retrains(tmp_path: Path, sqlite_uri: str) -> None:
    """What no embedding metric sees: the share of training data the version never saw. Past the noise
    floor's 80 % (0.25 more), the default policy retrains at once; up to it, nothing is due."""
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    current = write_items(tmp_path / "a.npz", ids, vectors)
    within = json.loads(run_cli(*check_args(sqlite_uri, version, current, "w1")[:-1], "--data-growth", "0.25",
                                "--json").output)
    assert within["metrics"]["data.growth"] == 0.25 and within["action"] == "none"
    assert "data:" not in within["not_measured"]
    behind = json.loads(run_cli(*check_args(sqlite_uri, version, current, "w2", window_end="2026-07-02T00:00:00Z")[:-1],
                                "--data-growth", "0.4", "--json").output)
    assert (behind["action"], behind["decision"]["rule_id"]) == ("retrain", "retrain-behind-data")
    assert "training data grew by 40%" in behind["decision"]["explanation"]
    assert [row["metrics"]["data.growth"] for row in api.history("recsys", tracking_uri=sqlite_uri)] == [0.25, 0.4]
    table = run_cli("history", "--model", "recsys", "--tracking-uri", sqlite_uri).output
    assert "data.growth" in table and "retrain-behind-data" in table


def test_the_data_growth_is_part_of_the_window(tmp_path: Path, sqlite_uri: str) -> None:
    """The same embeddings a week later, with more data arrived, are another window (no --window-id: the
    id comes from the digest), and the same window id told another growth is refused, not answered with
    the decision taken on the first."""
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    current = write_items(tmp_path / "a.npz", ids, vectors)
    base = ["check", "--model", "recsys", "--version", version, "--current", current, "--policy", POLICY,
            "--tracking-uri", sqlite_uri, "--json"]
    first = json.loads(run_cli(*base, "--data-growth", "0.1", "--window-end", "2026-07-01T00:00:00Z").output)
    later = json.loads(run_cli(*base, "--data-growth", "0.4", "--window-end", "2026-07-08T00:00:00Z").output)
    assert first["window_id"] != later["window_id"] and not later["already_recorded"]
    assert (first["action"], later["action"]) == ("none", "retrain")
    again = run_cli(*check_args(sqlite_uri, version, current, "w9")[:-1], "--data-growth", "0.1")
    refused = run_cli(*check_args(sqlite_uri, version, current, "w9")[:-1], "--data-growth", "0.2", expect=2)
    assert again.exit_code == 0 and "was decided on other data" in refused.output
    assert len(api.history("recsys", tracking_uri=sqlite_uri)) == 3


@pytest.mark.parametrize("growth", ["-0.1", "nan", "inf"])
def test_a_data_growth_that_is_not_a_share_exits_2_and_records_nothing(tmp_path: Path, sqlite_uri: str,
                                                                         growth: str) -> None:
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    args = check_args(sqlite_uri, version, write_items(tmp_path / "a.npz", ids, vectors))[:-1]
    result = run_cli(*args, "--data-growth", growth, expect=2)
    assert f"--data-growth {float(growth)!r}" in result.output and "a number >= 0" in result.output
    assert api.history("recsys", tracking_uri=sqlite_uri) == []


def test_the_python_api_takes_numpy_numbers_as_data_growth_and_refuses_flags_and_text() -> None:
    from drift_decider.errors import InputError
    from drift_decider.evidence.assemble import require_data_growth

    for growth in (0, 0.3, np.float32(0.3), np.int64(2)):
        require_data_growth(growth)
    for growth in (True, "0.3", -1, 10**400):
        with pytest.raises(InputError, match="--data-growth"):
            require_data_growth(growth)
