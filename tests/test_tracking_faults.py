"""MLflow as a system of record under stress: a server killed mid-check, concurrent checks, basic auth."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time

import numpy as np
import pytest
from drift_decider.tracking.connection import connect

from conftest import MlflowServer
from drift_decider.tracking import tags
from support import POLICY, cli_process, json_outcomes, movielens_items, register_with_reference, write_items

pytestmark = pytest.mark.server


def _window_runs(db, window_id: str) -> list[tuple[str, str, str | None]]:
    """(run id, lifecycle, complete tag) of runs for a window, read straight from the server's sqlite."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
        return conn.execute(
            "select r.run_uuid, r.lifecycle_stage, c.value from runs r "
            "join tags w on w.run_uuid = r.run_uuid and w.key = ? and w.value = ? "
            "left join tags c on c.run_uuid = r.run_uuid and c.key = ?",
            (tags.WINDOW_ID, window_id, tags.COMPLETE)).fetchall()


def _complete(runs):
    return [r for r in runs if r[1] == "active" and r[2] == "true"]


def test_server_killed_mid_check_spools_and_sync_lands_exactly_once(tmp_path):
    server = MlflowServer(tmp_path / "server").start()
    try:
        version, _ = register_with_reference(server.uri, tmp_path)
        ids, vectors = movielens_items()
        current = write_items(tmp_path / "cur.npz", ids, vectors * 1.3)
        spool = tmp_path / "spool"
        db = server.root / "mlflow.db"
        for attempt in range(4):     # the kill must land between the run's creation and its completion
            window = f"fault-{attempt}"
            check = cli_process("check", "--model", "recsys", "--version", version, "--current", current, "--policy",
                         POLICY, "--window-id", window, "--window-end", "2026-05-01T00:00:00Z", "--tracking-uri",
                         server.uri, "--spool-dir", spool)
            while check.poll() is None and not _window_runs(db, window):
                time.sleep(0.002)
            server.kill()
            _, stderr = check.communicate(timeout=120)
            if check.returncode == 1 and list(spool.glob("*.json")):
                break
            server.start()
        else:
            pytest.fail("could not interrupt a check mid-write in 4 attempts")
        assert "saved to" in stderr and "drift-decider sync" in stderr, stderr

        server.start()
        client = connect(server.uri)
        runs = _window_runs(db, window)
        decision_tags = client.get_model_version("recsys", version).tags
        if not _complete(runs):   # nothing half-written is visible as a decision
            assert decision_tags.get(tags.WINDOW_ID) != window
        sync = cli_process("sync", "--tracking-uri", server.uri, "--spool-dir", spool, "--json")
        out, err = sync.communicate(timeout=180)
        assert sync.returncode == 0, err
        assert [entry["status"] for entry in json.loads(out)] in (["recorded"], ["already recorded"])
        runs = _window_runs(db, window)
        assert len(_complete(runs)) == 1
        assert [r for r in runs if r[1] == "active" and r[2] != "true"] == []   # the orphan is gone
        assert client.get_model_version("recsys", version).tags[tags.WINDOW_ID] == window
        again = cli_process("sync", "--tracking-uri", server.uri, "--spool-dir", spool, "--json")
        out, _ = again.communicate(timeout=120)
        assert again.returncode == 0 and json.loads(out) == []
        assert len(_complete(_window_runs(db, window))) == 1
    finally:
        server.stop()


def test_eight_concurrent_checks_all_land_and_tags_name_the_latest_window(tmp_path, mlflow_server):
    version, _ = register_with_reference(mlflow_server.uri, tmp_path, name="concurrent")
    ids, vectors = movielens_items()
    rng = np.random.default_rng(11)
    processes = []
    for day in range(1, 9):
        current = write_items(tmp_path / f"w{day}.npz", ids, vectors + rng.normal(scale=0.01, size=vectors.shape))
        processes.append(cli_process("check", "--model", "concurrent", "--version", version, "--current", current,
                              "--policy", POLICY, "--window-id", f"w{day}", "--window-end",
                              f"2026-06-0{day}T00:00:00Z", "--tracking-uri", mlflow_server.uri, "--json",
                              "--spool-dir", tmp_path / "spool"))
    outcomes = json_outcomes(processes)
    client = connect(mlflow_server.uri)
    experiment = client.get_experiment_by_name("drift-decider").experiment_id
    runs = client.search_runs([experiment], f"tags.`{tags.MODEL}` = 'concurrent'")
    assert sorted(r.data.tags[tags.WINDOW_ID] for r in runs) == [f"w{d}" for d in range(1, 9)]
    assert all(r.data.tags[tags.COMPLETE] == "true" for r in runs)
    assert {o["decision_id"] for o in outcomes} == {r.data.tags[tags.DECISION_ID] for r in runs}
    mv = client.get_model_version("concurrent", version)
    latest = next(o for o in outcomes if o["window_id"] == "w8")
    assert mv.tags[tags.WINDOW_ID] == "w8" and mv.tags[tags.RUN_ID] == latest["run_id"]
    assert mv.tags[tags.DECISION_ID] == latest["decision_id"]


def test_basic_auth_server_works_with_credentials_and_keeps_no_secret(tmp_path):
    password = "pw-" + secrets.token_hex(12)
    server = MlflowServer(tmp_path / "auth", extra_args=("--app-name", "basic-auth"),
                          env={"MLFLOW_AUTH_ADMIN_PASSWORD": password,
                               "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}).start()
    credentials = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}
    try:
        ids, vectors = movielens_items()
        current = write_items(tmp_path / "cur.npz", ids, vectors)
        anonymous = cli_process("check", "--model", "recsys", "--version", "1", "--current", current,
                                "--policy", POLICY, "--tracking-uri", server.uri,
                                env={"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""})
        _, err = anonymous.communicate(timeout=120)
        assert anonymous.returncode == 1 and "error: MLflow" in err and "401" in err, err

        os.environ.update(credentials)
        try:
            version, _ = register_with_reference(server.uri, tmp_path)
            check = cli_process("check", "--model", "recsys", "--version", version, "--current", current, "--policy",
                         POLICY, "--window-id", "auth-1", "--tracking-uri", server.uri, "--json")
            out, err = check.communicate(timeout=300)
            assert check.returncode == 0, err
            run_id = json.loads(out)["run_id"]
            client = connect(server.uri)
            run = client.get_run(run_id)
            mv = client.get_model_version("recsys", version)
            stored = json.dumps([run.data.tags, run.data.params, mv.tags, sorted(run.data.metrics)])
            artifacts = ""
            for item in client.list_artifacts(run_id, "drift_decider"):
                artifacts += open(client.download_artifacts(run_id, item.path, str(tmp_path / "dl"))).read()
        finally:
            for key in credentials:
                os.environ.pop(key, None)
        assert "decision" in artifacts and password not in stored + artifacts
        assert "MLFLOW_TRACKING_PASSWORD" not in stored + artifacts
    finally:
        server.stop()
