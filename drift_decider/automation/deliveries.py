"""Is a delivery MLflow's, and new? HMAC signature, timestamp window and delivery-id de-duplication.

MLflow signs ``"{delivery_id}.{timestamp}.{body}"`` with the webhook's secret (HMAC-SHA256, base64,
``v1,`` prefix: mlflow/webhooks/delivery.py) and retries a delivery with the same id and timestamp.
A delivery older than the window is refused, so only ids inside the window need remembering: they
are kept in memory and appended to a file in the state folder, so a restarted receiver still knows
them (a replay of a delivery it took before the restart does nothing either).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import hmac
import os
import re
import threading
import time
from pathlib import Path

from drift_decider.errors import InputError

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
# MLflow's ids are UUIDs: ASCII with no dot, so neither the signed "{id}.{timestamp}." prefix nor a
# line of the state file can be shifted or split by a crafted id
_DELIVERY_ID = r"[A-Za-z0-9_-]{1,128}"
_TIMESTAMP = r"[0-9]{1,12}"          # ASCII digits: str.isdigit() also takes "²", which int() refuses
_STATE_LINE = re.compile(rf"({_TIMESTAMP}) ({_DELIVERY_ID})".encode())


def refusal(secret: str, delivery_id: str | None, timestamp: str | None, signature: str | None, body: bytes,
            max_age_seconds: float, now: float | None = None) -> str | None:
    """Why the delivery is not authentic or too old to trust, or None when it is MLflow's and fresh.
    Several space-separated signatures may be sent (a secret being rotated); one match is enough."""
    if not delivery_id or not timestamp or not signature:
        return f"missing {DELIVERY_ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}"
    if not re.fullmatch(_DELIVERY_ID, delivery_id):
        return "malformed delivery id"
    if not re.fullmatch(_TIMESTAMP, timestamp):
        return "malformed timestamp"
    expected = base64.b64encode(hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body,
                                         hashlib.sha256).digest()).decode()
    if not any(hmac.compare_digest(part.partition(",")[2].encode(), expected.encode())
               for part in signature.split() if part.startswith("v1,")):
        return "signature does not match"
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > max_age_seconds:
        return (f"timestamp is {abs(age):.0f} s {'old' if age > 0 else 'ahead'}, outside the "
                f"{max_age_seconds:.0f} s window")
    return None


class SeenDeliveries:
    """Delivery ids taken within the replay window: in memory, and appended to ``path`` (one
    ``timestamp id`` line each, fsynced) so they survive a restart. Thread-safe."""

    def __init__(self, path: Path, max_age_seconds: float) -> None:
        """Load the ids of earlier runs; InputError (exit 2) when the state folder cannot be used or
        the file is damaged: starting without its ids would let a replay inside the window run again."""
        self.path, self.max_age = path, max_age_seconds
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._appended = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = path.read_bytes() if path.exists() else b""
        except OSError as exc:
            raise InputError(f"cannot use the receiver's state file {path}: {exc.strerror or exc}") from None
        # what follows the last newline is a line cut by a crash before its fsync: that delivery was
        # never answered, so MLflow sends it again; compacting below drops it
        for number, line in enumerate(data.split(b"\n")[:-1], 1):
            match = _STATE_LINE.fullmatch(line)
            if match is None:
                raise InputError(f"{path}:{number}: not a `TIMESTAMP DELIVERY-ID` line ({line[:40]!r}): the file "
                                 f"is damaged; move it away to start afresh (a delivery replayed within "
                                 f"{max_age_seconds:.0f} s of being taken could then run again)")
            self._seen[match[2].decode()] = int(match[1])
        try:
            self._compact()
        except OSError as exc:
            raise InputError(f"cannot write the receiver's state file {path}: {exc.strerror or exc}") from None

    def first_time(self, delivery_id: str, timestamp: int) -> bool:
        """Record ``delivery_id``; False when it was recorded before (a retry or a replay). OSError when
        it cannot be written: then it is not recorded either, so the same delivery sent again is new."""
        with self._lock:
            if delivery_id in self._seen:
                return False
            self._append(f"{timestamp} {delivery_id}\n".encode())
            self._seen[delivery_id] = timestamp
            self._appended += 1
            if self._appended >= 1000:
                with contextlib.suppress(OSError):     # the line is appended; the next compaction retries
                    self._compact()
            return True

    def _append(self, line: bytes) -> None:
        """One whole line, fsynced, or none: a failed write is cut off so the next line starts clean."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            end = os.fstat(fd).st_size
            try:
                if os.write(fd, line) != len(line):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                raise
        finally:
            os.close(fd)

    def _compact(self) -> None:
        """Forget ids older than twice the window (they are refused by their timestamp anyway) and
        rewrite the file with the rest, atomically."""
        cutoff = time.time() - 2 * self.max_age
        self._seen = {key: stamp for key, stamp in self._seen.items() if stamp >= cutoff}
        fresh = self.path.with_suffix(".tmp")
        fresh.write_text("".join(f"{stamp} {key}\n" for key, stamp in self._seen.items()), encoding="utf-8")
        os.replace(fresh, self.path)
        self._appended = 0
