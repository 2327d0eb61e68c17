"""Registry automation (issue 17, point 3) end to end: a real `mlflow server` (sqlite) fires its
webhooks at a real `drift-decider serve` process, which sets each new version's reference from the
config's template and runs the promotion gate. A passing candidate takes the alias, a failing one
does not, both recorded; a forged signature is refused (401) and a replayed delivery id does
nothing; a version created while the receiver is down is caught up by `webhooks reconcile`.

Deliveries are asynchronous (the server posts from a thread pool after replying), so the test
polls the registry with a timeout; the webhook is registered before the first version is created,
because the server caches each event's webhook list for up to 60 s once it has looked it up.
Champion moving gets the new holder checked on today's window (model_version_alias.created).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import MlflowServer, free_port
from drift_decider import api
from drift_decider.inputs.serving_index import ServingIndex
from drift_decider.tracking import tags
from drift_decider.tracking.connection import connect
from drift_decider.tracking.registry import ensure_experiment, register_external_model
from support import POLICY, movielens_items, run_cli, write_items

pytestmark = [pytest.mark.server, pytest.mark.slow]

GATE = POLICY.parent / "promotion-gate.yaml"
SECRET_ENV = "DRIFT_DECIDER_TEST_WEBHOOK_SECRET"
PASSED = "drift_decider.promotion.passed"
CONFIG = """\
apiVersion: drift-decider/v1
kind: Automation
receiver:
  url: http://127.0.0.1:{port}/mlflow-webhook
  secret_env: {secret_env}
  state_dir: state
models:
  recsys:
    model_version.created:
      - reference:
          embeddings: candidates/v{{version}}.npz
      - promote:
          alias: champion
          policy: {gate}
          current: prod/{{today}}/items.npz
          index: prod/{{today}}/index
    model_version_alias.created:
      - check:
          alias: champion
          policy: {policy}
          current: prod/{{today}}/items.npz
"""


@pytest.fixture
def webhook_server(tmp_path: Path):
    """A tracking server allowed to call a receiver on 127.0.0.1 over http (fine for tests, not for
    production), keeping webhook secrets under a fixed key, retrying a failed delivery once."""
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    server = MlflowServer(tmp_path / "mlflow", env={
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": key, "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_WEBHOOK_REQUEST_TIMEOUT": "10"}).start()
    yield server
    server.stop()


def _inputs(folder: Path) -> None:
    """Candidate 1 learned today's production items, candidate 2 a world that has moved on, 3 is 1 again;
    today's production data and its serving index (the gate fails closed without index evidence)."""
    from datetime import datetime, timezone

    ids, vectors = movielens_items()
    today = folder / "prod" / datetime.now(timezone.utc).date().isoformat()
    today.mkdir(parents=True)
    (folder / "candidates").mkdir()
    for version, candidate in ((1, vectors), (2, vectors * 1.6 + 0.3), (3, vectors)):
        write_items(folder / "candidates" / f"v{version}.npz", ids, candidate)
    write_items(today / "items.npz", ids, vectors)
    ServingIndex.build(ids, vectors, kind="exact").save(today / "index")


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _signed(secret: str, delivery_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers as MLflow signs a delivery (mlflow/webhooks/delivery.py)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{delivery_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": stamp,
            "X-MLflow-Signature": f"v1,{base64.b64encode(digest).decode()}"}


def _wait_for(condition, what: str, timeout: float = 120.0, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}" + (f"; receiver log:\n{log.read_text()}" if log else ""))


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_registry_events_set_references_and_gate_promotions(tmp_path: Path, webhook_server: MlflowServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    secret = secrets.token_hex(32)
    monkeypatch.setenv(SECRET_ENV, secret)
    _inputs(tmp_path)
    port = free_port()
    config = tmp_path / "automation.yaml"
    config.write_text(CONFIG.format(port=port, secret_env=SECRET_ENV, gate=GATE, policy=POLICY))
    uri = webhook_server.uri
    hook = json.loads(run_cli("webhooks", "register", "--config", config, "--tracking-uri", uri, "--json").stdout)
    assert hook["events"] == ["model_version.created", "model_version_alias.created"]
    assert hook["status"] == "ACTIVE" and secret not in str(hook)
    again = json.loads(run_cli("webhooks", "register", "--config", config, "--tracking-uri", uri, "--json").stdout)
    assert again["webhook_id"] == hook["webhook_id"] and not again["created"]     # updated, not doubled

    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        receiver = subprocess.Popen([sys.executable, "-m", "drift_decider", "serve", "--config", str(config),
                                     "--tracking-uri", uri], stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    endpoint = f"http://127.0.0.1:{port}/mlflow-webhook"
    try:
        _wait_for(lambda: _healthy(port) or receiver.poll() is not None, "the receiver to listen", 60, log)
        assert receiver.poll() is None, log.read_text()
        client = connect(uri)
        experiment = ensure_experiment(client)

        def gated(version: str):
            return client.get_model_version("recsys", version).tags.get(PASSED)

        # a candidate matching production: reference set from the template, gate passed, alias taken
        first = register_external_model(client, uri, "recsys", experiment_id=experiment).version
        assert _wait_for(lambda: gated(first), "the gate of version 1", log=log) == "true"
        assert str(client.get_model_version_by_alias("recsys", "champion").version) == first
        # a candidate from a world that moved on: gated, blocked, the alias stays
        second = register_external_model(client, uri, "recsys", experiment_id=experiment).version
        assert _wait_for(lambda: gated(second), "the gate of version 2", log=log) == "false"
        assert str(client.get_model_version_by_alias("recsys", "champion").version) == first
        for version in (first, second):
            assert client.get_model_version("recsys", version).tags[tags.REFERENCE_URI]
        runs = _promotion_runs(client, experiment)
        assert sorted(runs) == [first, second]          # one recorded gate each
        assert runs[second] != "none" and runs[first] == "none"
        # champion moving to version 1 got it checked on today's window, recorded as `check` records it
        checked = _wait_for(lambda: [line for line in _lines(log) if line.get("job") == "check"],
                            "the check of the new champion", log=log)
        assert [(line["version"], line["status"]) for line in checked] == [(first, "done")]
        history = api.history("recsys", version=first, tracking_uri=uri)
        assert [row["run_id"] for row in history] == [checked[0]["run_id"]]
        accepted = [line for line in _lines(log) if line.get("delivery") == "accepted"]
        assert sorted((line["event"], line["version"]) for line in accepted) == [
            ("model_version.created", first), ("model_version.created", second), ("model_version_alias.created", first)]
        created_second = next(line["delivery_id"] for line in accepted
                              if (line["event"], line["version"]) == ("model_version.created", second))

        # a forged signature is refused, and runs nothing
        body = json.dumps({"entity": "model_version", "action": "created",
                           "data": {"name": "recsys", "version": "7"}}).encode()
        forged = _signed("not-the-secret-" + "x" * 20, "forged-1", body)
        assert _post(endpoint, body, forged)[0] == 401
        assert _post(endpoint, body, {**_signed(secret, "stale-1", body, int(time.time()) - 3600)})[0] == 401
        # an authentic delivery whose job fails (no such version): accepted, the failure
        # logged with its exit code, the receiver goes on; the rest of the event's jobs are skipped
        assert _post(endpoint, body, _signed(secret, "no-such-version", body))[0] == 202
        failed = _wait_for(lambda: [line for line in _lines(log) if line.get("delivery_id") == "no-such-version"
                                    and "job" in line], "the failed job", log=log)
        assert [(line["job"], line["status"]) for line in failed] == [("reference", "failed"), ("promote", "skipped")]
        assert failed[0]["exit_code"] == 2 and "has no version 7" in failed[0]["error"]
        # MLflow's delivery of version 2, replayed (same id, signed again): nothing runs
        replay = json.dumps({"entity": "model_version", "action": "created",
                             "data": {"name": "recsys", "version": second}}).encode()
        status, reply = _post(endpoint, replay, _signed(secret, created_second, replay))
        assert (status, reply["status"]) == (200, "duplicate")
        time.sleep(2)
        assert sorted(_promotion_runs(client, experiment)) == [first, second]
        assert len([line for line in _lines(log) if line.get("job") == "promote" and line["status"] == "done"]) == 2
        assert receiver.poll() is None
    finally:
        receiver.terminate()
        receiver.wait(timeout=60)
    assert secret not in log.read_text()

    # a version created while the receiver is down: MLflow's delivery fails; the reconcile pass
    # compares the registry with the recorded decisions and runs what is owed, once
    third = register_external_model(client, uri, "recsys", experiment_id=experiment).version
    results = json.loads(run_cli("webhooks", "reconcile", "--config", config, "--tracking-uri", uri,
                                 "--json").stdout)
    assert [(r["version"], r["job"], r["status"]) for r in results] == [
        (third, "reference", "done"), (third, "promote", "done"), (third, "check", "done")]
    assert results[1]["passed"] and results[1]["alias_moved"] and results[1]["previous_holder"] == first
    assert str(client.get_model_version_by_alias("recsys", "champion").version) == third
    assert not results[2]["already_recorded"]
    # a second pass owes nothing: the champion's check of today is the one recorded
    again = json.loads(run_cli("webhooks", "reconcile", "--config", config, "--tracking-uri", uri, "--json").stdout)
    assert [(r["job"], r["already_recorded"], r["run_id"]) for r in again] == [("check", True, results[2]["run_id"])]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _promotion_runs(client, experiment: str) -> dict[str, str]:
    """Version -> decision of each complete promotion run (a second run of a version fails the test)."""
    runs = client.search_runs([experiment], f"tags.`{tags.KIND}` = 'promotion' and tags.`{tags.COMPLETE}` = 'true'")
    decisions = {run.data.tags[tags.VERSION]: run.data.tags[tags.DECISION] for run in runs}
    assert len(decisions) == len(runs), "a version was gated twice"
    return decisions
