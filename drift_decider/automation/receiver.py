"""The HTTP receiver of `drift-decider serve`: MLflow's webhook deliveries in, jobs out.

Replies (MLflow retries 429 and 5xx only, with the same delivery id):
- 401 when the signature is missing or wrong or the timestamp outside the replay window;
- 503 when the delivery cannot be recorded as seen (state folder unwritable): nothing ran, and
  MLflow's retry of it is taken as new;
- 200 ``duplicate`` for a delivery id taken before (a retry or a replay): nothing runs again;
- 400 for a signed body that is not a delivery (MLflow would send the same again: no retry helps);
- 200 ``ignored`` for an event no job is configured for;
- 202 ``accepted`` once the delivery is recorded as seen and its jobs queued.

Jobs run after the reply, one at a time, on a worker thread: a gate can take longer than MLflow's
30 s delivery timeout, and a timed-out delivery would be retried. A job that fails is logged with
its error and exit code and the receiver goes on; since the delivery was accepted MLflow does not
retry it; the reconcile pass (``serve --reconcile-every``) runs what is still owed once the cause
is fixed, e.g. the reference file has arrived. Each delivery and each job result is one JSON line
on stdout.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import threading
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from drift_decider.automation.config import Config
from drift_decider.automation.deliveries import (DELIVERY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
                                                 SeenDeliveries, refusal)
from drift_decider.automation.jobs import Event, jobs_for, parse_event, run_jobs
from drift_decider.errors import InputError, PolicyError, error_message

MAX_BODY_BYTES = 1_000_000          # a registry event is well under 10 kB
REQUEST_SECONDS = 30.0              # to send a whole request (MLflow's own delivery timeout is 30 s)
MAX_CONNECTIONS = 64                # served at once; more connections get 503 (_BoundedServer)
STOP_WAIT_SECONDS = 120.0           # how long a stopping receiver lets the running job finish
_output_lock = threading.Lock()


def log(record: dict[str, Any]) -> None:
    """One JSON line on stdout, whole even when threads log at once."""
    line = json.dumps({"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}, default=str)
    with _output_lock:
        print(line, flush=True)


class Receiver:
    """Verifies deliveries and queues their jobs; ``run`` is the worker that runs them in order."""

    def __init__(self, config: Config, secret: str, tracking_uri: str | None) -> None:
        self.config, self._secret, self.tracking_uri = config, secret, tracking_uri
        self.seen = SeenDeliveries(config.state_dir / "deliveries.log", config.max_age_seconds)
        self.work: queue.Queue[Callable[[], None] | None] = queue.Queue()

    def handle(self, headers: Any, body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        """The reply to one POST; queues the delivery's jobs when it is authentic, fresh and new."""
        delivery_id = headers.get(DELIVERY_ID_HEADER)
        why = refusal(self._secret, delivery_id, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER), body,
                      self.config.max_age_seconds)
        if why is not None:
            return self._reply(HTTPStatus.UNAUTHORIZED, "refused", (delivery_id or "")[:128] or None, reason=why)
        try:
            new = self.seen.first_time(delivery_id, int(headers[TIMESTAMP_HEADER]))
        except OSError as exc:
            return self._reply(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", delivery_id,
                               reason=f"cannot record the delivery as seen: {exc.strerror or exc}")
        if not new:
            return self._reply(HTTPStatus.OK, "duplicate", delivery_id)
        try:
            event = parse_event(json.loads(body))
        except (ValueError, RecursionError, InputError) as exc:  # not JSON, nested too deep, not an event
            return self._reply(HTTPStatus.BAD_REQUEST, "malformed", delivery_id, reason=str(exc)[:200])
        jobs = () if event is None else jobs_for(self.config, event)
        if not jobs:
            return self._reply(HTTPStatus.OK, "ignored", delivery_id,
                               event=None if event is None else event.name)
        self.work.put(lambda: self._run(delivery_id, event, jobs))
        return self._reply(HTTPStatus.ACCEPTED, "accepted", delivery_id, event=event.name, model=event.model,
                           version=event.version, jobs=[job.kind for job in jobs])

    def _run(self, delivery_id: str, event: Event, jobs: tuple) -> None:
        for result in run_jobs(self.config, event, jobs, tracking_uri=self.tracking_uri):
            log({"delivery_id": delivery_id, **result})

    def run(self) -> None:
        """The worker: queued jobs, one at a time, until ``None`` is queued."""
        while (task := self.work.get()) is not None:
            try:
                task()
            except Exception as exc:  # noqa: BLE001 - a bug in one job must not stop the worker
                log({"status": "failed", "error": error_message(exc)})

    @staticmethod
    def _reply(status: HTTPStatus, outcome: str, delivery_id: str | None,
               **details: Any) -> tuple[HTTPStatus, dict[str, Any]]:
        reply = {"status": outcome, "delivery_id": delivery_id, **{k: v for k, v in details.items() if v is not None}}
        log({"delivery": outcome, "http_status": int(status), **reply})
        return status, reply


def make_server(receiver: Receiver) -> ThreadingHTTPServer:
    """The HTTP server: POST on the config's route is a delivery, GET /health says it is up."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "drift-decider"
        sys_version = ""
        timeout = 30           # seconds a client may take to send its request: a stalled one frees its thread

        def setup(self) -> None:
            """The socket timeout bounds each read; this bounds the whole request, so a client that
            trickles a byte at a time cannot hold its thread for ever."""
            super().setup()
            self._hang_up = threading.Timer(REQUEST_SECONDS, self._stop_reading)
            self._hang_up.daemon = True
            self._hang_up.start()

        def _stop_reading(self) -> None:
            """Reads see the end of the request: it is answered (400, 411 or 401) and the thread freed."""
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RD)

        def finish(self) -> None:
            self._hang_up.cancel()
            super().finish()

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] != receiver.config.route:
                self._send(HTTPStatus.NOT_FOUND, {"status": "not found"})
                return
            length = self.headers.get("Content-Length", "")
            digits = re.fullmatch(r"[0-9]+", length) is not None     # not isdigit(): it takes "²", int() does not
            if not digits or len(length) > 9 or int(length) > MAX_BODY_BYTES:
                status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if digits else HTTPStatus.LENGTH_REQUIRED
                self._send(status, {"status": "refused",
                                    "reason": f"a body of at most {MAX_BODY_BYTES} bytes, with its length"})
                return
            self._send(*receiver.handle(self.headers, self.rfile.read(int(length))))

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/health":
                self._send(HTTPStatus.OK, {"status": "ok"})
            else:
                self._send(HTTPStatus.NOT_FOUND, {"status": "not found"})

        def _send(self, status: HTTPStatus, reply: dict[str, Any]) -> None:
            body = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            """Silent: every delivery is logged as a JSON line by the receiver instead."""

    host, port = receiver.config.listen
    server_class = _BoundedIPv6Server if ":" in host else _BoundedServer
    try:
        server = server_class((host, port), Handler)
    except OSError as exc:        # port taken, address not this machine's, host unknown
        raise PolicyError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                          receiver.config.listen_at) from None
    server.daemon_threads = True
    return server


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS at once: a flood of connections (each held up to
    REQUEST_SECONDS) gets 503 beyond that, which MLflow retries, instead of a thread each until memory
    runs out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.slots.acquire(blocking=False):
            try:
                super().process_request(request, client_address)
            except BaseException:          # the thread did not start: its slot is free again
                self.slots.release()
                raise
            return
        with contextlib.suppress(OSError):
            request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 5\r\n"
                            b"Connection: close\r\n\r\n")
        self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _BoundedIPv6Server(_BoundedServer):
    """For ``listen: "[::1]:8787"``: the standard server binds IPv4 only."""

    address_family = socket.AF_INET6


def serve(receiver: Receiver, *, reconcile_every: float | None = None,
          reconcile: Callable[[], None] | None = None) -> None:
    """Serve until interrupted; ``reconcile`` runs on the worker at start and every ``reconcile_every``
    seconds, queued like a delivery's jobs so the two never run at once in this process."""
    server = make_server(receiver)
    worker = threading.Thread(target=receiver.run, name="jobs", daemon=True)
    worker.start()
    stop = threading.Event()
    if reconcile is not None:
        # at most one pass waits in the queue: while MLflow is down, passes slower than the interval
        # would otherwise pile up, and a delivery's jobs would wait behind all of them
        pending = threading.Event()

        def queued_pass() -> None:
            pending.clear()
            reconcile()

        def enqueue() -> None:
            if not pending.is_set():
                pending.set()
                receiver.work.put(queued_pass)

        enqueue()
        if reconcile_every:
            def tick() -> None:
                while not stop.wait(reconcile_every):
                    enqueue()
            threading.Thread(target=tick, name="reconcile", daemon=True).start()
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    log({"serving": f"http://{shown}:{port}{receiver.config.route}", "events": receiver.config.events(),
         "models": sorted(receiver.config.models)})
    try:
        server.serve_forever()
    except KeyboardInterrupt:       # Ctrl-C, or SIGTERM/SIGHUP as the CLI turns them (cli.main)
        pass
    finally:
        stop.set()
        server.server_close()
        _finish(receiver, worker)


def _finish(receiver: Receiver, worker: threading.Thread) -> None:
    """Let the running job end (a job cut midway is a crash the API recovers from, but slower); drop
    the queued ones: their deliveries are recorded as seen, so the reconcile pass runs them."""
    dropped = 0
    while True:
        try:
            dropped += receiver.work.get_nowait() is not None
        except queue.Empty:
            break
    receiver.work.put(None)
    log({"stopping": True, "queued_jobs_dropped": dropped})
    worker.join(timeout=STOP_WAIT_SECONDS)
