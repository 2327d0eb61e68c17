"""Credentials in the tracking URI (http://user:pass@host) never reach stderr, the spool or MLflow, and
spool entries are private to the user (issue 16: #4). A real `mlflow server` with basic auth; a
user with MLflow's default READ permission can read a version but not claim a window; a check whose
server fails mid-write (a proxy) is spooled."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from conftest import MlflowServer, free_port
from drift_decider.errors import TrackingError, redact
from drift_decider.tracking.landing import land_check
from drift_decider.tracking.recorder import CheckPayload
from drift_decider.tracking.registry import VersionRef
from drift_decider.tracking.store import TrackingStore
from drift_decider.inputs.windows import Window
from test_concurrency import _FaultProxy
from support import POLICY, movielens_items, register_with_reference, write_items

pytestmark = pytest.mark.server


def _run(*args: object) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    return subprocess.run([sys.executable, "-m", "drift_decider", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def _files_containing(root: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_password_in_the_uri_is_never_printed_spooled_or_stored(tmp_path: Path) -> None:
    admin_password, reader_password = "pw-" + secrets.token_hex(12), "pw-" + secrets.token_hex(12)
    server = MlflowServer(tmp_path / "auth", extra_args=("--app-name", "basic-auth"),
                          env={"MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
                               "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}).start()
    admin = f"http://admin:{admin_password}@127.0.0.1:{server.port}"
    reader = f"http://reader:{reader_password}@127.0.0.1:{server.port}"
    spool = tmp_path / "spool"
    try:
        requests.post(f"{server.uri}/api/2.0/mlflow/users/create", auth=("admin", admin_password), timeout=30,
                      json={"username": "reader", "password": reader_password}).raise_for_status()
        version, _ = register_with_reference(admin, tmp_path)
        ids, vectors = movielens_items()
        current = write_items(tmp_path / "cur.npz", ids, vectors * 1.2)
        check = ["check", "--model", "recsys", "--version", version, "--current", current, "--policy", POLICY,
                 "--spool-dir", spool, "--tracking-uri"]
        recorded = _run(*check, admin, "--window-id", "w1", "--json")
        assert recorded.returncode == 0, recorded.stderr
        refused = _run(*check, reader, "--window-id", "w2")       # may read, may not claim the window
        assert refused.returncode == 1 and "Permission denied" in refused.stderr, refused.stderr
        proxy = _FaultProxy(server.uri, "/api/2.0/mlflow/runs/log-inputs", allowed=0)   # the server fails mid-write
        try:
            spooled = _run(*check, f"http://admin:{admin_password}@127.0.0.1:{proxy.uri.rsplit(':', 1)[1]}",
                           "--window-id", "w2")
        finally:
            proxy.close()
        assert spooled.returncode == 1 and "was saved to" in spooled.stderr, spooled.stderr
        wrong = _run(*check, f"http://admin:wrong-{reader_password}@127.0.0.1:{server.port}", "--window-id", "w3")
        assert wrong.returncode == 1 and "401" in wrong.stderr, wrong.stderr
        dead = _run("sync", "--spool-dir", spool, "--tracking-uri", f"http://admin:{admin_password}@127.0.0.1:9")
        assert dead.returncode == 1, dead.stderr
    finally:
        server.stop()
    printed = recorded.stdout + recorded.stderr + refused.stderr + spooled.stderr + wrong.stderr + dead.stderr
    assert "http://***@127.0.0.1" in spooled.stderr + wrong.stderr
    for secret in (admin_password, reader_password):
        assert secret not in printed
        assert _files_containing(spool, secret) == [] and _files_containing(server.root, secret) == []
    entries = list(spool.glob("*.json"))
    assert len(entries) == 1 and "w2" in entries[0].name
    assert stat.S_IMODE(entries[0].stat().st_mode) == 0o600 and stat.S_IMODE(spool.stat().st_mode) == 0o700


def test_a_check_spooled_for_an_unreachable_server_keeps_no_password(tmp_path: Path) -> None:
    """MLflow's connection errors repeat the URI with its credentials; neither the message nor the entry
    keeps them. A real client and a closed port: the write fails at its first request."""
    from mlflow import MlflowClient

    password = "pw-" + secrets.token_hex(12)
    uri = f"http://admin:{password}@127.0.0.1:{free_port()}"
    ref = VersionRef(name="recsys", version="1", model_id="m-1", tags={})
    window = Window("w1", datetime(2026, 3, 1, tzinfo=timezone.utc), "cur", "digest", str(tmp_path / "cur.npz"))
    payload = CheckPayload(values={"mmd2": 0.1}, inputs={}, evidence={}, decision={"action": "none"})
    with pytest.raises(TrackingError) as raised:
        land_check(TrackingStore(MlflowClient(uri, uri)), ref, window, payload, 1, spool_dir=tmp_path / "spool")
    (entry,) = (tmp_path / "spool").glob("*.json")
    assert password not in str(raised.value) and password not in entry.read_text()
    assert "http://***@127.0.0.1" in str(raised.value) and "http://***@127.0.0.1" in entry.read_text()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600


@pytest.mark.parametrize("text, expected", [
    ("http://user:pass@host:5000/api", "http://***@host:5000/api"),
    ("to https://u%40x:p@ss@h/ failed; see http://h2/", "to https://***@h/ failed; see http://h2/"),
    ("'http://token@host' and 'http://host/?a=b'", "'http://***@host' and 'http://host/?a=b'"),
])
def test_redact_strips_user_info_only(text: str, expected: str) -> None:
    assert redact(text) == expected
