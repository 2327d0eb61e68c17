"""`sync` deletes what a failed check left behind, never a run another check is still writing.

A spooled check is replayed against a real sqlite store. An incomplete run of its window made by one
of the entry's own write attempts (tagged with the attempt id from its creation) or abandoned over an
hour ago is deleted; any other incomplete run is a concurrent check still writing, and the entry waits.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime, timezone

import pytest
from mlflow import MlflowClient

from drift_decider import api
from drift_decider.errors import TrackingError
from drift_decider.policy import PolicyState, evaluate, load_policy
from drift_decider.tracking.spool import read_entries as read_spool
from drift_decider.tracking import tags
from drift_decider.tracking.connection import connect
from drift_decider.tracking.checks import search_checks
from drift_decider.tracking.landing import IN_FLIGHT_SECONDS, land_check
from drift_decider.tracking.recorder import CheckPayload, discard_orphan
from drift_decider.tracking.registry import ensure_experiment, resolve_version
from drift_decider.tracking.store import TrackingStore
from drift_decider.inputs.windows import Window
from support import POLICY, register_with_reference, run_cli

END = datetime(2026, 5, 1, tzinfo=timezone.utc)
WINDOW = "w-1"


def read_entries(spool: Path) -> list:
    """The spool's entries; every file in it must be one."""
    entries, unreadable = read_spool(spool)
    assert not unreadable
    return entries


@pytest.fixture
def version_ref(sqlite_uri, tmp_path):
    version, _ = register_with_reference(sqlite_uri, tmp_path / "ref")
    client = connect(sqlite_uri)
    return client, resolve_version(client, "recsys", version)


def _dead_uri() -> str:
    with socket.socket() as probe:        # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _spool_one(ref, spool) -> str:
    """A check whose MLflow was unreachable: a real decision, saved whole to the spool. Returns the
    attempt id the entry keeps."""
    metrics = {"knn_jaccard": 0.4, "domain_classifier.auc": 0.9, "norm_ratio": 1.0}
    decision = evaluate(load_policy(POLICY), metrics, PolicyState(), END)
    payload = CheckPayload(values=metrics, inputs={"note": "spooled in a test"}, evidence={},
                           decision=decision.to_dict())
    window = Window(WINDOW, END, "current", "d1g3st", "test")
    before = {path for path, _ in read_entries(spool)}
    with pytest.raises(TrackingError, match="saved to"):      # mlflow's own client, no connect() probe
        land_check(TrackingStore(MlflowClient(_dead_uri())), ref, window, payload, 0, spool_dir=spool)
    ((_, entry),) = [(path, entry) for path, entry in read_entries(spool) if path not in before]
    (attempt,) = entry.attempts
    return attempt


def _incomplete_run(client, ref, *, attempt: str | None = None, age_s: float = 0.0) -> str:
    """An incomplete run for the window, tagged as record_check tags it when creating the run."""
    run_tags = {tags.MODEL: ref.name, tags.VERSION: ref.version, tags.WINDOW_ID: WINDOW,
                tags.WINDOW_END: END.isoformat(), tags.KIND: "check"}
    if attempt:
        run_tags[tags.ATTEMPT] = attempt
    start = int((time.time() - age_s) * 1000)
    return client.create_run(ensure_experiment(client), start_time=start, tags=run_tags).info.run_id


def _runs(client, ref) -> list:
    return search_checks(client, ensure_experiment(client), model=ref.name, version=ref.version,
                         window_id=WINDOW, complete_only=False)


@pytest.mark.parametrize("age_s", [0.0, IN_FLIGHT_SECONDS - 60])
def test_sync_waits_for_a_check_still_writing_the_window(version_ref, sqlite_uri, tmp_path, age_s):
    client, ref = version_ref
    spool = tmp_path / "spool"
    _spool_one(ref, spool)
    writer = _incomplete_run(client, ref, attempt="another-check", age_s=age_s)

    (outcome,) = api.sync(tracking_uri=sqlite_uri, spool_dir=spool)
    assert outcome["status"] == "deferred" and outcome["run_id"] == writer
    assert len(read_entries(spool)) == 1, "the entry must stay for the next sync"
    assert client.get_run(writer).info.lifecycle_stage == "active"

    client.set_tag(writer, tags.COMPLETE, "true")          # the concurrent check finishes
    (outcome,) = api.sync(tracking_uri=sqlite_uri, spool_dir=spool)
    assert outcome["status"] == "already recorded" and outcome["run_id"] == writer
    assert read_entries(spool) == []
    assert [run.info.run_id for run in _runs(client, ref)] == [writer]


@pytest.mark.parametrize("case", ["made by the entry's attempt", "abandoned over an hour ago"])
def test_sync_deletes_incomplete_runs_no_live_check_owns(version_ref, sqlite_uri, tmp_path, case):
    client, ref = version_ref
    spool = tmp_path / "spool"
    attempt = _spool_one(ref, spool)
    if case == "made by the entry's attempt":      # the server created the run, the check never learnt it
        stale = _incomplete_run(client, ref, attempt=attempt)
    else:
        stale = _incomplete_run(client, ref, attempt="a-dead-check", age_s=IN_FLIGHT_SECONDS + 60)

    (outcome,) = api.sync(tracking_uri=sqlite_uri, spool_dir=spool)
    assert outcome["status"] == "recorded" and outcome["run_id"] != stale
    assert client.get_run(stale).info.lifecycle_stage == "deleted"
    runs = _runs(client, ref)
    assert [run.info.run_id for run in runs] == [outcome["run_id"]]
    assert runs[0].data.tags[tags.COMPLETE] == "true" and runs[0].data.tags[tags.ATTEMPT] != attempt
    assert client.get_model_version("recsys", ref.version).tags[tags.WINDOW_ID] == WINDOW


def test_two_failed_checks_of_one_window_land_once(version_ref, sqlite_uri, tmp_path):
    client, ref = version_ref
    spool = tmp_path / "spool"
    first, second = _spool_one(ref, spool), _spool_one(ref, spool)
    assert len(read_entries(spool)) == 2                  # the second failure does not overwrite the first
    orphans = [_incomplete_run(client, ref, attempt=a) for a in (first, second)]

    outcomes = api.sync(tracking_uri=sqlite_uri, spool_dir=spool)
    assert sorted(o["status"] for o in outcomes) == ["already recorded", "recorded"]
    assert read_entries(spool) == []
    assert all(client.get_run(run).info.lifecycle_stage == "deleted" for run in orphans)
    assert [run.data.tags[tags.COMPLETE] for run in _runs(client, ref)] == ["true"]


def test_an_old_entry_names_its_orphan_by_run_id(version_ref, sqlite_uri, tmp_path):
    """Spool files written before attempt ids: the run the entry names is its orphan, however young."""
    client, ref = version_ref
    spool = tmp_path / "spool"
    _spool_one(ref, spool)
    orphan = _incomplete_run(client, ref)
    ((path, _),) = read_entries(spool)
    old = json.loads(path.read_text())
    del old["attempts"]
    path.write_text(json.dumps({**old, "orphan_run_id": orphan}))

    (outcome,) = api.sync(tracking_uri=sqlite_uri, spool_dir=spool)
    assert outcome["status"] == "recorded"
    assert client.get_run(orphan).info.lifecycle_stage == "deleted"


def test_discard_orphan_keeps_only_a_run_that_records_the_window(version_ref):
    client, ref = version_ref
    done = _incomplete_run(client, ref)
    client.set_tag(done, tags.COMPLETE, "true")
    assert discard_orphan(client, done) is True
    assert client.get_run(done).info.lifecycle_stage == "active"
    client.delete_run(done)                                # complete but deleted records nothing
    assert discard_orphan(client, done) is False
    other = _incomplete_run(client, ref)
    assert discard_orphan(client, other) is False
    assert client.get_run(other).info.lifecycle_stage == "deleted"
    assert discard_orphan(client, "0" * 32) is False       # gone altogether


def test_cli_sync_exits_4_while_an_entry_is_deferred(version_ref, sqlite_uri, tmp_path):
    client, ref = version_ref
    spool = tmp_path / "spool"
    _spool_one(ref, spool)
    writer = _incomplete_run(client, ref, attempt="another-check")
    result = run_cli("sync", "--tracking-uri", sqlite_uri, "--spool-dir", spool, "--json", expect=4)
    assert [o["status"] for o in json.loads(result.output)] == ["deferred"]
    client.set_tag(writer, tags.COMPLETE, "true")
    result = run_cli("sync", "--tracking-uri", sqlite_uri, "--spool-dir", spool, expect=0)
    assert "1 spooled check(s) synced, 0 deferred" in result.output
