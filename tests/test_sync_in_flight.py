"""`sync` deletes what a dead check left behind, never a run another check is still writing.

A spooled check is replayed against a real sqlite store. An incomplete run of the same window that
started after the entry was spooled (and recently) belongs to a concurrent check: sync must leave it
and wait; one that started before the entry was written, or long ago, is an orphan and goes.
"""

from __future__ import annotations

import socket
import time
from datetime import datetime, timezone

import pytest
from mlflow import MlflowClient

from drift_decider.errors import TrackingError
from drift_decider.policy import History, evaluate, load_policy
from drift_decider.tracking import tags
from drift_decider.tracking.connection import connect
from drift_decider.tracking.history import search_checks
from drift_decider.tracking.landing import IN_FLIGHT_SECONDS, land_check, sync_spool
from drift_decider.tracking.recorder import CheckPayload
from drift_decider.tracking.registry import ensure_experiment, resolve_version
from drift_decider.window import Window
from support import POLICY, register_with_reference

END = datetime(2026, 5, 1, tzinfo=timezone.utc)


def _dead_uri() -> str:
    with socket.socket() as probe:        # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _spool_one(ref, window_id: str, spool) -> None:
    """A check whose MLflow was unreachable: a real decision, saved whole to the spool."""
    metrics = {"knn_jaccard": 0.4, "domain_classifier.auc": 0.9, "norm_ratio": 1.0}
    decision = evaluate(load_policy(POLICY), metrics, History(), END)
    payload = CheckPayload(values=metrics, inputs={"note": "spooled in a test"}, evidence={},
                           decision=decision.to_dict())
    window = Window(window_id, END, "current", "d1g3st", "test")
    with pytest.raises(TrackingError, match="saved to"):      # mlflow's own client, no connect() probe
        land_check(MlflowClient(_dead_uri()), ref, window, payload, 0, spool_dir=spool)


def _writer_run(client, ref, window_id: str, start_time: int | None = None) -> str:
    """An incomplete run for the window, tagged as a check writes it before completing."""
    run = client.create_run(ensure_experiment(client), start_time=start_time, tags={
        tags.MODEL: ref.name, tags.VERSION: ref.version, tags.WINDOW_ID: window_id,
        tags.WINDOW_END: END.isoformat(), tags.KIND: "check"})
    return run.info.run_id


def _runs(client, ref, window_id: str) -> list:
    return search_checks(client, ensure_experiment(client), model=ref.name, version=ref.version,
                         window_id=window_id, complete_only=False)


def test_sync_waits_for_a_check_still_writing_the_window(sqlite_uri, tmp_path):
    version, _ = register_with_reference(sqlite_uri, tmp_path / "ref")
    client = connect(sqlite_uri)
    ref = resolve_version(client, "recsys", version)
    spool = tmp_path / "spool"
    _spool_one(ref, "w-busy", spool)
    time.sleep(0.01)
    writer = _writer_run(client, ref, "w-busy")

    (outcome,) = sync_spool(client, spool)
    assert outcome["status"] == "deferred" and outcome["run_id"] == writer
    assert list(spool.glob("*.json")), "the entry must stay for the next sync"
    assert client.get_run(writer).info.lifecycle_stage == "active"

    client.set_tag(writer, tags.COMPLETE, "true")          # the concurrent check finishes
    (outcome,) = sync_spool(client, spool)
    assert outcome["status"] == "already recorded" and outcome["run_id"] == writer
    assert not list(spool.glob("*.json"))
    assert [run.info.run_id for run in _runs(client, ref, "w-busy")] == [writer]


@pytest.mark.parametrize("when", ["before the entry", "over an hour ago"])
def test_sync_deletes_incomplete_runs_no_live_check_can_own(sqlite_uri, tmp_path, when):
    version, _ = register_with_reference(sqlite_uri, tmp_path / "ref")
    client = connect(sqlite_uri)
    ref = resolve_version(client, "recsys", version)
    spool = tmp_path / "spool"
    if when == "before the entry":
        stale = _writer_run(client, ref, "w-dead")
        time.sleep(0.01)
        _spool_one(ref, "w-dead", spool)
    else:
        _spool_one(ref, "w-dead", spool)
        stale = _writer_run(client, ref, "w-dead", int((time.time() - IN_FLIGHT_SECONDS - 60) * 1000))

    (outcome,) = sync_spool(client, spool)
    assert outcome["status"] == "recorded" and outcome["run_id"] != stale
    assert client.get_run(stale).info.lifecycle_stage == "deleted"
    runs = _runs(client, ref, "w-dead")
    assert [run.info.run_id for run in runs] == [outcome["run_id"]]
    assert runs[0].data.tags[tags.COMPLETE] == "true"
    assert client.get_model_version("recsys", version).tags[tags.WINDOW_ID] == "w-dead"
