"""`drift-decider serve` against a hostile client and a failing disk, and its config against operator
mistakes: a real receiver process answers every request with a status (no traceback, no dropped
connection) and goes on serving; a delivery it could not record is not lost; every config or start-up
mistake is exit 2 at the config's file:line:col. No tracking server is needed: the deliveries here
name a model no job is configured for, so they are verified, recorded and ignored."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port
from drift_decider.automation import receiver as receiver_module
from drift_decider.automation.config import load_config
from drift_decider.automation.deliveries import SeenDeliveries
from drift_decider.errors import InputError
from support import POLICY, run_cli

GATE = POLICY.parent / "promotion-gate.yaml"

SECRET_ENV = "DD_HOSTILE_SECRET"
SECRET = "hostile-test-secret-" + "q" * 24
CONFIG = """\
apiVersion: drift-decider/v1
kind: Automation
receiver:
  url: http://127.0.0.1:{port}/hook
  secret_env: DD_HOSTILE_SECRET
  state_dir: state
models:
  recsys:
    model_version.created:
      - promote:
          alias: champion
          policy: {policy}
          current: prod/{{today}}.npz
"""
# an event for a model without jobs: verified and recorded, then ignored (no tracking store is needed)
IGNORED = json.dumps({"entity": "model_version", "action": "created", "data": {"name": "other", "version": "1"}})


def _signed(delivery_id: str, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """Headers as MLflow signs a delivery (mlflow/webhooks/delivery.py)."""
    stamp = str(int(time.time())) if timestamp is None else timestamp
    digest = hmac.new(SECRET.encode(), f"{delivery_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": stamp,
            "X-MLflow-Signature": f"v1,{base64.b64encode(digest).decode()}"}


def _request(port: int, head: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """Send exactly these bytes (headers as latin-1, as HTTP carries them); the status and JSON reply.
    A connection closed without a reply fails the test."""
    lines = [head, *(f"{key}: {value}" for key, value in (headers or {}).items())]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply, f"{head}: connection closed without a reply"
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2] or b"{}")


def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    return _request(port, "POST /hook HTTP/1.0", body, {"Content-Length": str(len(body)), **headers})


def _serve(folder: Path, port: int, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`drift-decider serve` on ``folder``'s config, logging to serve.log; returns once it answers."""
    with open(folder / "serve.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "drift_decider", "serve", "--config",
                                    str(folder / "automation.yaml"), *args], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, SECRET_ENV: SECRET, **(env or {})})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    assert process.poll() is None, (folder / "serve.log").read_text()
    return process


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory):
    """A real `drift-decider serve` process; yields (port, folder, process)."""
    folder = tmp_path_factory.mktemp("hostile")
    port = free_port()
    (folder / "automation.yaml").write_text(CONFIG.format(port=port, policy=GATE))
    process = _serve(folder, port, "--tracking-uri", f"sqlite:///{folder}/m.db")
    yield port, folder, process
    process.terminate()
    process.wait(timeout=60)
    text = (folder / "serve.log").read_text()
    assert "Traceback" not in text and SECRET not in text, text


def test_unauthenticated_junk_gets_a_status_and_the_receiver_goes_on(receiver) -> None:
    port, folder, process = receiver
    # Content-Length that str.isdigit() takes and int() refuses: "²" (latin-1 0xB2), and 5,000 digits
    assert _request(port, "POST /hook HTTP/1.0", headers={"Content-Length": "\u00b2"})[0] == 411
    assert _request(port, "POST /hook HTTP/1.0", headers={"Content-Length": "1" * 5000})[0] == 413
    assert _request(port, "POST /hook HTTP/1.0", headers={"Content-Length": "-5"})[0] == 411
    assert _request(port, "POST /hook HTTP/1.1", b"5\r\nhello\r\n0\r\n\r\n",
                    {"Host": "x", "Transfer-Encoding": "chunked"})[0] == 411
    assert _request(port, "POST /elsewhere HTTP/1.0", headers={"Content-Length": "0"})[0] == 404
    body = IGNORED.encode()
    assert _post(port, body, {**_signed("forged", body), "X-MLflow-Signature": "v1,AAAA"})[0] == 401
    assert _request(port, "GET /health HTTP/1.0") == (200, {"status": "ok"})
    assert process.poll() is None


def test_signed_but_hostile_deliveries_are_refused_with_a_reason(receiver) -> None:
    """What only a holder of the secret could send still gets a reply, not a dropped connection."""
    port, folder, process = receiver
    deep = b"[" * 100_000 + b"]" * 100_000
    status, reply = _post(port, deep, _signed("deeply-nested", deep))
    assert (status, reply["status"]) == (400, "malformed")
    body = IGNORED.encode()
    status, reply = _post(port, body, _signed("odd-stamp", body, timestamp="\u00b2"))
    assert (status, reply["reason"]) == (401, "malformed timestamp")
    # a dot in the id would blur where the signed "{id}.{timestamp}." prefix ends
    status, reply = _post(port, body, _signed("a.1", body))
    assert (status, reply["reason"]) == (401, "malformed delivery id")
    assert _post(port, body, _signed("fine-1", body))[1]["status"] == "ignored"
    assert process.poll() is None


def test_a_delivery_that_cannot_be_recorded_is_refused_with_503_and_taken_when_sent_again(receiver) -> None:
    """A lost write must not leave the id remembered: MLflow's retry would be a `duplicate` and its jobs
    would never run."""
    port, folder, process = receiver
    state = folder / "state" / "deliveries.log"
    body = IGNORED.encode()
    headers = _signed("while-the-disk-fails", body)
    saved = state.read_bytes()
    state.unlink()
    state.mkdir()                       # root ignores file modes: a folder in its place cannot be appended to
    try:
        status, reply = _post(port, body, headers)
    finally:
        state.rmdir()
        state.write_bytes(saved)
    assert (status, reply["status"]) == (503, "unavailable") and "cannot record" in reply["reason"]
    assert _post(port, body, headers)[1]["status"] == "ignored"        # MLflow's retry: new, not a duplicate
    assert _post(port, body, headers)[1]["status"] == "duplicate"
    assert state.read_text().splitlines()[-1].endswith(" while-the-disk-fails")
    assert process.poll() is None


def test_a_damaged_state_file_stops_the_start_at_its_line_and_a_cut_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "deliveries.log"
    now = int(time.time())
    path.write_bytes(b"%d good-1\n\xff\xfe junk\n" % now)
    with pytest.raises(InputError, match=rf"{path}:2: not a `TIMESTAMP DELIVERY-ID` line"):
        SeenDeliveries(path, 300)
    # a crash between write and fsync cuts the last line: that delivery was never answered (MLflow
    # sends it again), so it is dropped, and the next line does not run on from it
    path.write_bytes(b"%d good-1\n%d cut-of" % (now, now))
    seen = SeenDeliveries(path, 300)
    assert not seen.first_time("good-1", now) and seen.first_time("cut-off", now)
    assert path.read_text() == f"{now} good-1\n{now} cut-off\n"


@pytest.mark.parametrize("change, says", [
    (("http://127.0.0.1:{port}/hook", "http://127.0.0.1:99999/hook"), "4:8: receiver: url: "),
    (("  state_dir: state", "  state_dir: state\n  max_age: 0m"), "7:12: receiver: max_age: must be at least 1m"),
    (("policy: {policy}", "policy: missing.yaml"), "12:19: promote job: policy: "),
    (("alias: champion", "alias: champion.v2"), "11:18: promote job: alias: alias 'champion.v2' may hold only letters"),
    (("alias: champion", "alias: Latest"), "11:18: promote job: alias: alias 'Latest' is reserved by MLflow"),
])
def test_config_mistakes_are_exit_2_at_the_config_line(tmp_path: Path, change: tuple[str, str], says: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config = tmp_path / "automation.yaml"
    config.write_text(CONFIG.replace(*change).format(port=free_port(), policy=GATE))
    output = run_cli("webhooks", "reconcile", "--config", config, expect=2).output
    assert f"{config}:{says}" in output and "unexpected" not in output, output


def test_a_port_already_taken_or_a_state_folder_that_is_a_file_is_exit_2(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config = tmp_path / "automation.yaml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config.write_text(CONFIG.format(port=taken.getsockname()[1], policy=GATE))
        output = run_cli("serve", "--config", config, expect=2).output
    assert f"{config}:4:8: cannot listen on 127.0.0.1:" in output, output
    (tmp_path / "afile").write_text("")
    config.write_text(CONFIG.replace("state_dir: state", "state_dir: afile").format(port=free_port(), policy=GATE))
    output = run_cli("serve", "--config", config, expect=2).output
    assert "cannot use the receiver's state file" in output and "unexpected" not in output, output


def test_a_client_trickling_its_request_is_cut_off_and_answered(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-read socket timeout never fires for a byte every half second: a whole-request deadline
    must, or each such client holds a thread for as long as it likes (in-process, deadline shortened)."""
    monkeypatch.setattr(receiver_module, "REQUEST_SECONDS", 1.5, raising=False)
    port = free_port()
    (tmp_path / "automation.yaml").write_text(CONFIG.format(port=port, policy=GATE))
    server = receiver_module.make_server(receiver_module.Receiver(load_config(tmp_path / "automation.yaml"),
                                                                  SECRET, None))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"POST /hook HTTP/1.0\r\nContent-Length: 50\r\n\r\n")
            started, reply = time.monotonic(), b""
            while not reply and time.monotonic() - started < 8:
                with contextlib.suppress(OSError):    # once answered, the server may have closed
                    sock.sendall(b"x")
                sock.settimeout(0.5)
                try:
                    reply = sock.recv(65536)
                except TimeoutError:
                    pass
            assert reply.startswith(b"HTTP/1.0 401"), reply
            assert time.monotonic() - started < 4
    finally:
        server.shutdown()
        server.server_close()


def test_connections_past_the_cap_get_503_and_the_slots_come_back(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread per connection, capped: with MAX_CONNECTIONS stalled clients holding their threads the
    next connection is answered 503 at once (MLflow retries it), and once they hang up the receiver
    serves again (in-process, the cap shortened to 3)."""
    monkeypatch.setattr(receiver_module, "MAX_CONNECTIONS", 3)
    port = free_port()
    (tmp_path / "automation.yaml").write_text(CONFIG.format(port=port, policy=GATE))
    server = receiver_module.make_server(receiver_module.Receiver(load_config(tmp_path / "automation.yaml"),
                                                                  SECRET, None))
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def health() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            return sock.recv(65536)

    stalled = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    try:
        for sock in stalled:
            sock.sendall(b"POST /hook HTTP/1.0\r\n")           # and never the rest
        time.sleep(0.5)
        assert health().startswith(b"HTTP/1.0 503")
    finally:
        for sock in stalled:
            sock.close()
        deadline = time.monotonic() + 5
        while not health().startswith(b"HTTP/1.0 200") and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            assert health().startswith(b"HTTP/1.0 200")
        finally:
            server.shutdown()
            server.server_close()


def test_register_prints_no_password_of_the_receiver_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver behind basic auth has user:password@ in its url; MLflow sends it, we never print it.
    The webhook is stored in a sqlite registry directly (only a tracking server fires webhooks)."""
    for name, value in ((SECRET_ENV, SECRET), ("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https"),
                        ("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
                        ("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())):
        monkeypatch.setenv(name, value)
    config = tmp_path / "automation.yaml"
    config.write_text(CONFIG.replace("http://127.0.0.1", "http://hook-user:hook-password@127.0.0.1")
                      .format(port=free_port(), policy=GATE))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    printed = run_cli("webhooks", "register", "--config", config, "--tracking-uri", uri, "--json").stdout
    assert json.loads(printed)["url"].startswith("http://***@127.0.0.1:")
    printed += run_cli("webhooks", "register", "--config", config, "--tracking-uri", uri).stdout
    assert "updated" in printed and "hook-password" not in printed and SECRET not in printed, printed


def test_reconcile_passes_slower_than_their_interval_do_not_pile_up(tmp_path: Path) -> None:
    """MLflow down: each pass spends seconds in retries; ticks every second must not queue a pass each
    (a delivery's jobs would wait behind all of them): at most one waits, so stopping drops at most one."""
    port = free_port()
    (tmp_path / "automation.yaml").write_text(CONFIG.format(port=port, policy=GATE))
    process = _serve(tmp_path, port, "--tracking-uri", f"http://127.0.0.1:{free_port()}", "--reconcile-every", "1",
                     env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"})
    time.sleep(3.5)                     # the first pass is still retrying; three ticks have come
    process.terminate()
    process.wait(timeout=60)
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")]
    stopping = next(line for line in lines if line.get("stopping"))
    assert stopping["queued_jobs_dropped"] <= 1, lines


@pytest.mark.parametrize("pasted", ["3f9a0c" + "e1" * 29, "abcdef" + "0123456789" * 6])
def test_a_secret_pasted_into_secret_env_is_refused_and_not_printed(tmp_path: Path, pasted: str) -> None:
    """An easy slip: the secret itself where its variable's name goes. Whether or not it happens to look
    like a name (a hex secret starts with a letter 6 times in 16), it must not be echoed."""
    config = tmp_path / "automation.yaml"
    config.write_text(CONFIG.replace(SECRET_ENV, pasted).format(port=free_port(), policy=GATE))
    output = run_cli("serve", "--config", config, expect=2).output
    assert f"{config}:5:15: receiver: secret_env: expected the NAME" in output and pasted not in output, output
