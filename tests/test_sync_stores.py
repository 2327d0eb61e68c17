"""A spool entry lands in the store it was spooled for (issue 15, #11): it records that store's URI
without credentials, `sync` from another folder uses it, and a store that lacks the entry's model
version skips the entry and keeps it instead of failing on a foreign key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from drift_decider.tracking.landing import spooled_uri
from support import POLICY, movielens_items, register_with_reference, run_cli, write_items
from test_concurrency import _FaultProxy

pytestmark = pytest.mark.server


def test_spooled_uris_are_absolute_and_carry_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert spooled_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert spooled_uri("sqlite:////data/m.db") == "sqlite:////data/m.db"
    assert spooled_uri("http://user:secret@host:5000") == "http://***@host:5000"


def _sync(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([sys.executable, "-m", "drift_decider", "sync", *map(str, args), "--json"], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


def test_sync_from_another_folder_lands_in_the_store_the_check_was_for(tmp_path: Path, mlflow_server) -> None:
    version, _ = register_with_reference(mlflow_server.uri, tmp_path, name="spool-store")
    ids, vectors = movielens_items()
    current = write_items(tmp_path / "cur.npz", ids, vectors * 1.3)
    spool = tmp_path / "spool"
    proxy = _FaultProxy(mlflow_server.uri, "/api/2.0/mlflow/runs/log-inputs", allowed=0)
    try:
        failed = run_cli("check", "--model", "spool-store", "--version", version, "--current", current, "--policy",
                         POLICY, "--window-id", "w1", "--tracking-uri", proxy.uri, "--spool-dir", spool, expect=1)
        assert "saved to" in failed.output
        (entry,) = spool.glob("*.json")
        assert json.loads(entry.read_text())["tracking_uri"] == proxy.uri
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        wrong = _sync("--spool-dir", spool, "--tracking-uri", f"sqlite:///{tmp_path / 'other.db'}", cwd=elsewhere)
        assert wrong.returncode == 2 and "no MLflow store" in wrong.stdout        # sync never creates a store
        proxy.allowed = 10 ** 9                                                     # the server is back
        landed = _sync("--spool-dir", spool, cwd=elsewhere)                         # no URI: the entry's own
    finally:
        proxy.close()
    assert landed.returncode == 0, landed.stderr
    assert [o["status"] for o in json.loads(landed.stdout)] == ["recorded"]
    rows = json.loads(run_cli("history", "--model", "spool-store", "--tracking-uri", mlflow_server.uri,
                              "--json").output)
    assert [row["window_id"] for row in rows] == ["w1"] and not list(spool.glob("*.json"))


def test_a_store_without_the_entrys_model_skips_and_keeps_it(tmp_path: Path, mlflow_server, sqlite_uri: str) -> None:
    version, _ = register_with_reference(mlflow_server.uri, tmp_path, name="spool-other")
    register_with_reference(sqlite_uri, tmp_path / "local", name="spool-other")   # same name, other store
    ids, vectors = movielens_items()
    current = write_items(tmp_path / "cur.npz", ids, vectors * 1.3)
    spool = tmp_path / "spool"
    proxy = _FaultProxy(mlflow_server.uri, "/api/2.0/mlflow/runs/log-inputs", allowed=0)
    try:
        run_cli("check", "--model", "spool-other", "--version", version, "--current", current, "--policy", POLICY,
                "--window-id", "w1", "--tracking-uri", proxy.uri, "--spool-dir", spool, expect=1)
    finally:
        proxy.close()
    (outcome,) = json.loads(run_cli("sync", "--tracking-uri", sqlite_uri, "--spool-dir", spool, "--json",
                                    expect=2).output)
    assert outcome["status"] == "skipped" and proxy.uri in outcome["reason"]
    assert len(list(spool.glob("*.json"))) == 1
    assert json.loads(run_cli("history", "--model", "spool-other", "--tracking-uri", sqlite_uri,
                              "--json").output) == []


def test_a_check_whose_history_read_fails_is_kept_and_decided_at_sync(tmp_path: Path, mlflow_server) -> None:
    """MLflow failing while the check reads its history used to lose the measurement. Now it is spooled
    undecided with the policy it names; sync decides it on the history as it stands, unless the policy
    file changed meanwhile (then the entry is skipped and kept)."""
    import shutil

    version, _ = register_with_reference(mlflow_server.uri, tmp_path, name="undecided")
    ids, vectors = movielens_items()
    current = write_items(tmp_path / "cur.npz", ids, vectors * 1.3)
    policy = tmp_path / "policy.yaml"
    shutil.copy(POLICY, policy)
    spool = tmp_path / "spool"
    # three run searches before the decision's history read: the window's record, its claim, the read
    proxy = _FaultProxy(mlflow_server.uri, "/api/2.0/mlflow/runs/search", allowed=2)
    try:
        failed = run_cli("check", "--model", "undecided", "--version", version, "--current", current, "--policy",
                         policy, "--window-id", "w1", "--tracking-uri", proxy.uri, "--spool-dir", spool, expect=1)
    finally:
        proxy.close()
    assert "The measured check was saved to" in failed.output
    (entry,) = spool.glob("*.json")
    saved = json.loads(entry.read_text())
    assert saved["payload"]["decision"] is None and saved["policy_path"] == str(policy.resolve())
    policy.write_text(re.sub(r"(?m)^  version: .*$", '  version: "edited"', policy.read_text(), count=1))
    (skipped,) = json.loads(run_cli("sync", "--tracking-uri", mlflow_server.uri, "--spool-dir", spool,
                                    "--json", expect=2).output)
    assert skipped["status"] == "skipped" and "changed since this window was measured" in skipped["reason"]
    shutil.copy(POLICY, policy)
    (landed,) = json.loads(run_cli("sync", "--tracking-uri", mlflow_server.uri, "--spool-dir", spool,
                                   "--json").output)
    assert landed["status"] == "recorded" and not list(spool.glob("*.json"))
    dry = json.loads(run_cli("check", "--model", "undecided", "--version", version, "--current", current,
                             "--policy", policy, "--window-id", "w1-again", "--tracking-uri", mlflow_server.uri,
                             "--dry-run", "--json").output)
    rows = json.loads(run_cli("history", "--model", "undecided", "--tracking-uri", mlflow_server.uri,
                              "--json").output)
    assert [(row["window_id"], row["action"]) for row in rows] == [("w1", landed["decision"])]
    assert landed["decision"] == dry["action"]
