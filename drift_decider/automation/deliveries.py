"""Is a delivery MLflow's, and new? HMAC signature, timestamp window and delivery-id de-duplication.

MLflow signs ``"{delivery_id}.{timestamp}.{body}"`` with the webhook's secret (HMAC-SHA256, base64,
``v1,`` prefix: mlflow/webhooks/delivery.py) and retries a delivery with the same id and timestamp.
A delivery older than the window is refused, so only ids inside the window need remembering: they
are kept in memory and appended to a file in the state folder, so a restarted receiver still knows
them (a replay of a delivery it took before the restart does nothing either).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from pathlib import Path

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
_MAX_ID_CHARS = 128


def refusal(secret: str, delivery_id: str | None, timestamp: str | None, signature: str | None, body: bytes,
            max_age_seconds: float, now: float | None = None) -> str | None:
    """Why the delivery is not authentic or too old to trust, or None when it is MLflow's and fresh.
    Several space-separated signatures may be sent (a secret being rotated); one match is enough."""
    if not delivery_id or not timestamp or not signature:
        return f"missing {DELIVERY_ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}"
    if len(delivery_id) > _MAX_ID_CHARS or not delivery_id.isprintable() or " " in delivery_id:
        return "malformed delivery id"
    if not timestamp.isdigit() or len(timestamp) > 12:
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
        self.path, self.max_age = path, max_age_seconds
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._appended = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                stamp, _, delivery_id = line.partition(" ")
                if stamp.isdigit() and delivery_id:
                    self._seen[delivery_id] = int(stamp)
        self._compact()

    def first_time(self, delivery_id: str, timestamp: int) -> bool:
        """Record ``delivery_id``; False when it was recorded before (a retry or a replay)."""
        with self._lock:
            if delivery_id in self._seen:
                return False
            self._seen[delivery_id] = timestamp
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(f"{timestamp} {delivery_id}\n")
                handle.flush()
                os.fsync(handle.fileno())
            self._appended += 1
            if self._appended >= 1000:
                self._compact()
            return True

    def _compact(self) -> None:
        """Forget ids older than twice the window (they are refused by their timestamp anyway) and
        rewrite the file with the rest, atomically."""
        cutoff = time.time() - 2 * self.max_age
        self._seen = {key: stamp for key, stamp in self._seen.items() if stamp >= cutoff}
        fresh = self.path.with_suffix(".tmp")
        fresh.write_text("".join(f"{stamp} {key}\n" for key, stamp in self._seen.items()), encoding="utf-8")
        os.replace(fresh, self.path)
        self._appended = 0
