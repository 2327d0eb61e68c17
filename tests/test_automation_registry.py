"""What the registry automation and `rollback` may move, on a real sqlite store (review s8): a late or
repeated `model_version.created` delivery never gates a version older than the alias holder, a
rollback stays rolled back, `rollback` and `promote` refuse aliases and targets before anything is
written, and a reference half-written by a failure is no reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from drift_decider import api
from drift_decider.automation.config import VERSION_CREATED, load_config
from drift_decider.automation.jobs import Event, gate_not_owed, jobs_for, run_jobs
from drift_decider.tracking import tags
from drift_decider.tracking.connection import connect
from drift_decider.tracking.registry import ensure_experiment, register_external_model
from drift_decider.tracking.store import TrackingStore
from support import GATE, GOOD_AUTOMATION, movielens_items, run_cli, write_items



@pytest.fixture
def versions(tmp_path: Path, sqlite_uri: str) -> list[str]:
    """Four registered versions of ``recsys`` (no references: nothing here may get as far as a gate)."""
    client = connect(sqlite_uri)
    experiment = ensure_experiment(client)
    return [register_external_model(client, sqlite_uri, "recsys", experiment_id=experiment).version
            for _ in range(4)]


def _holder(uri: str) -> str:
    return str(connect(uri).get_model_version_by_alias("recsys", "champion").version)


def _runs(uri: str) -> int:
    client = connect(uri)
    return sum(len(client.search_runs([e.experiment_id])) for e in client.search_experiments())


def test_a_late_created_delivery_never_gates_a_version_older_than_the_holder(tmp_path, sqlite_uri, versions):
    """Review s8 #1: MLflow posts from a thread pool and retries, so version 2's event can arrive after
    version 4 took the alias; its gate passed and moved production back to 2."""
    connect(sqlite_uri).set_registered_model_alias("recsys", "champion", "4")
    config_path = tmp_path / "automation.yaml"
    config_path.write_text(GOOD_AUTOMATION)
    config = load_config(config_path)
    event = Event(VERSION_CREATED, "recsys", "2")
    promote = tuple(job for job in jobs_for(config, event) if job.kind == "promote")
    [result] = run_jobs(config, event, promote, tracking_uri=sqlite_uri)
    assert result["status"] == "done", result
    assert result["promote"] == "skipped: version 4 holds 'champion', and version 2 is not newer"
    assert _holder(sqlite_uri) == "4" and _runs(sqlite_uri) == 0


def test_a_rollback_stays_rolled_back_for_the_automation(sqlite_uri, versions):
    """Review s8 #2: a person put version 3 in production, rolled back to 2, and the next reconcile
    pass gated 3 (newer than the holder, never gated) and moved it back."""
    connect(sqlite_uri).set_registered_model_alias("recsys", "champion", "3")
    run_cli("rollback", "--model", "recsys", "--alias", "champion", "--to", "2", "--tracking-uri", sqlite_uri)
    assert _holder(sqlite_uri) == "2"
    states = api.version_states("recsys", tracking_uri=sqlite_uri)
    assert [s.rolled_back for s in states] == [frozenset(), frozenset(), {"champion"}, frozenset()]
    assert gate_not_owed("3", "champion", states, "2") == ("'champion' was rolled back from version 3, and "
                                                            "version 3 is not newer")
    assert gate_not_owed("4", "champion", states, "2") is None        # a newer version is gated as ever
    assert gate_not_owed("3", "shadow", states, "2") is None          # the rollback was of champion


@pytest.mark.parametrize("args, says", [
    (["--alias", "champoin", "--to", "2"], "alias 'champoin' of 'recsys' is not set"),
    (["--alias", "champion", "--to", "4"], "version 4 is newer than version 3, which holds 'champion'"),
    (["--alias", "latest", "--to", "2"], "alias 'latest' is reserved by MLflow"),
    (["--alias", "bad alias", "--to", "2"], "may hold only letters, digits"),
    (["--alias", "a" * 230, "--to", "2"], "(1 to 200 of them)"),
])
def test_rollback_moves_an_existing_alias_back_or_nothing(sqlite_uri, versions, args, says):
    """Review s8 #3: rollback moved any alias to any version, brand-new ones too, and created misspelt aliases."""
    connect(sqlite_uri).set_registered_model_alias("recsys", "champion", "3")
    output = run_cli("rollback", "--model", "recsys", *args, "--tracking-uri", sqlite_uri, expect=2).output
    assert says in output, output
    assert _holder(sqlite_uri) == "3"
    assert not any(key.startswith(tags.ROLLED_BACK) for key in connect(sqlite_uri).get_model_version(
        "recsys", "3").tags)


@pytest.mark.parametrize("alias", ["latest", "v2", "bad alias"])
def test_promote_refuses_an_alias_mlflow_refuses_before_measuring(tmp_path, sqlite_uri, versions, alias):
    """Review s8 #5: the gate ran and landed a run tagged passed, then MLflow refused the alias (exit 1)."""
    ids, vectors = movielens_items()
    current = write_items(tmp_path / "items.npz", ids, vectors)
    output = run_cli("promote", "--model", "recsys", "--candidate", "2", "--alias", alias, "--current", current,
                     "--policy", GATE, "--tracking-uri", sqlite_uri, expect=2).output
    assert f"alias {alias!r}" in output, output
    assert _runs(sqlite_uri) == 0


def test_a_reference_cut_short_by_a_failure_is_no_reference_and_can_be_set(tmp_path, sqlite_uri, versions):
    """Review s8 #4: the hash tag was written first and the URI fourth; a failure between them left a
    version that `reference set` called set (give --replace) and `check` called unset."""
    connect(sqlite_uri).set_model_version_tag("recsys", "1", tags.REFERENCE_SHA256, "0" * 64)
    assert not api.version_state("recsys", "1", tracking_uri=sqlite_uri).has_reference
    ids, vectors = movielens_items()
    items = write_items(tmp_path / "items.npz", ids, vectors)
    run_cli("reference", "set", "--model", "recsys", "--version", "1", "--embeddings", items,
            "--tracking-uri", sqlite_uri)
    assert api.version_state("recsys", "1", tracking_uri=sqlite_uri).has_reference
    output = run_cli("reference", "set", "--model", "recsys", "--version", "1", "--embeddings", items,
                     "--tracking-uri", sqlite_uri, expect=2).output
    assert "give --replace" in output, output


def test_gates_for_two_aliases_are_both_remembered(tmp_path, sqlite_uri):
    """Review s8, automation #6: a version kept only its latest gate's alias, so with promote jobs for
    two aliases the reconcile pass gated it again for the other one on every pass."""
    from drift_decider.inputs.serving_index import ServingIndex
    from support import register_with_reference

    version, reference = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    ServingIndex.build(ids, vectors, kind="exact").save(tmp_path / "index")
    for alias in ("champion", "shadow"):
        outcome = api.promote("recsys", version, alias, reference, GATE, index_path=tmp_path / "index",
                              tracking_uri=sqlite_uri)
        assert outcome.passed and outcome.moved
    [state] = api.version_states("recsys", tracking_uri=sqlite_uri)
    assert state.gated == {"champion": True, "shadow": True}
    assert "recorded (passed)" in gate_not_owed(version, "champion", [state], None)
    assert "recorded (passed)" in gate_not_owed(version, "shadow", [state], None)


def test_the_undo_of_promoting_an_older_version_moves_forward_again(tmp_path, sqlite_uri):
    """The undo `promote` prints must run even when the promotion went to an older version: rollback
    may move an alias forward to the version the holder's promotion replaced, and nowhere else."""
    import shlex

    from drift_decider.inputs.serving_index import ServingIndex
    from support import register_with_reference

    older, reference = register_with_reference(sqlite_uri, tmp_path / "a")
    newer, _ = register_with_reference(sqlite_uri, tmp_path / "b")
    third, _ = register_with_reference(sqlite_uri, tmp_path / "c")
    connect(sqlite_uri).set_registered_model_alias("recsys", "champion", newer)
    ids, vectors = movielens_items()
    ServingIndex.build(ids, vectors, kind="exact").save(tmp_path / "index")
    moved = api.promote("recsys", older, "champion", reference, GATE, index_path=tmp_path / "index",
                        tracking_uri=sqlite_uri)
    assert moved.moved and moved.undo.endswith(f"--to {newer}")
    output = run_cli("rollback", "--model", "recsys", "--alias", "champion", "--to", third, "--tracking-uri",
                     sqlite_uri, expect=2).output
    assert "no recorded promotion moved the alias from it" in output, output
    run_cli(*shlex.split(moved.undo)[1:], "--tracking-uri", sqlite_uri)
    assert _holder(sqlite_uri) == newer


def test_a_version_older_than_one_that_passed_its_gate_is_not_owed_one(sqlite_uri, versions):
    """Review s8b #3: newest first, version 3 passed and 2 was skipped ungated; after a person moved
    the alias back to 1 by hand, the next pass gated 2 and could move production to it."""
    from drift_decider.tracking.store import VersionState

    states = [VersionState("1", True, {}), VersionState("2", True, {}), VersionState("3", True, {"champion": True})]
    assert gate_not_owed("2", "champion", states, "1") == ("version 3 passed its gate for 'champion', and "
                                                            "version 2 is older")
    assert gate_not_owed("2", "shadow", states, "1") is None


def test_a_gate_recorded_before_per_alias_tags_is_kept_when_another_alias_is_gated(sqlite_uri, versions):
    """Review s8b #6: a store written before per-alias gate tags holds one gate pair per version; the
    first gate for another alias overwrote it, and the old alias was owed a gate again."""
    client = connect(sqlite_uri)
    client.set_model_version_tag("recsys", "2", "drift_decider.promotion.alias", "champion")
    client.set_model_version_tag("recsys", "2", "drift_decider.promotion.passed", "false")
    store = TrackingStore.open(sqlite_uri)
    ref = store.version("recsys", version="2")
    decision = {"action": "none", "decided_at": "2026-11-27T00:00:00Z", "decision_id": "d" * 64, "rule_id": None,
                "policy": {}}
    store.publish_promotion(ref, "shadow", store.alias_state("recsys", "shadow"), decision, "run", {
        "drift_decider.promotion.alias": "shadow", "drift_decider.promotion.passed": "true"}, passed=False)
    [state] = [s for s in api.version_states("recsys", tracking_uri=sqlite_uri) if s.version == "2"]
    assert state.gated == {"champion": False, "shadow": False}
