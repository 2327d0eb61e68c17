"""Land a check in MLflow, or spool it whole when MLflow fails, and replay the spool later."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from drift_decider.errors import InFlightError, TrackingError
from drift_decider.spool import SpoolEntry, read_entries, spool_lock, write_entry
from drift_decider.tracking import tags
from drift_decider.tracking.connection import mlflow_errors
from drift_decider.tracking.history import check_runs, search_checks
from drift_decider.tracking.recorder import (CheckPayload, RecordingFailed, discard_orphan, is_complete,
                                             publish_latest, record_check)
from drift_decider.tracking.registry import VersionRef, claim_prefix, ensure_experiment, read_claim, try_claim
from drift_decider.window import Window


@dataclass(frozen=True)
class Landed:
    """Where a check landed: its own run, or (``recorded_by``) the complete run of another check of the
    same window that held the window's claim, in which case nothing of this check was written."""

    run_id: str
    recorded_by: Any | None = None


def land_check(client, ref: VersionRef, window: Window, payload: CheckPayload, step: int, *, spool_dir: Path,
               kind: str = "check", extra_tags: dict[str, str] | None = None) -> Landed:
    """Record the check and publish the version's latest decision, unless another check of the window
    holds its claim (then its run, once complete); on failure, or when that check is still writing
    after WAIT_SECONDS, spool this one and raise."""
    attempt = uuid.uuid4().hex
    try:
        with mlflow_errors(f"preparing to record {ref.name} version {ref.version}"):
            experiment_id = ensure_experiment(client)
            winner = _take_window(client, experiment_id, ref, window, kind, attempt, set(), WAIT_SECONDS)
        if winner is not None:
            return Landed(winner.info.run_id, recorded_by=winner)
        return Landed(_record_and_publish(client, experiment_id, ref, window, payload, step, kind,
                                          extra_tags or {}, attempt))
    except TrackingError as exc:
        entry = SpoolEntry(model=ref.name, version=ref.version, model_id=ref.model_id, kind=kind,
                           window={**asdict(window), "window_end": window.window_end.isoformat()},
                           payload=asdict(payload), step=step, extra_tags=extra_tags or {},
                           orphan_run_id=getattr(exc, "orphan_run_id", None), reason=str(exc),
                           attempts=[attempt])
        path = write_entry(spool_dir, entry)
        then = ("run `drift-decider sync` once MLflow is back" if kind == "check" else
                "`drift-decider sync` records the gate's run once MLflow is back, but neither tags the candidate "
                "nor moves the alias: run `promote` again then")
        if isinstance(exc, InFlightError):
            then = "`drift-decider sync` lands it only if that check never does"
        raise type(exc)(f"{exc}\nThe complete {kind} (metrics and decision {payload.decision['action']!r}) "
                        f"was saved to {path}; {then}.") from exc


# Who records a window: the check holding its claim (registry.try_claim) on the version's LoggedModel.
# A holder that can no longer land (its attempt failed and was spooled, or its claim is over
# IN_FLIGHT_SECONDS old with no complete run) is replaced by claiming the next generation.
WAIT_SECONDS = 120.0        # how long a check waits for the holder of its window's claim to land it
_POLL_SECONDS = 0.5


def _claim_prefix(kind: str, window_id: str) -> str:
    """Where the claims of one window of one kind live among the LoggedModel's params."""
    return claim_prefix(f"{kind}/{window_id}")


def _take_window(client, experiment_id: str, ref: VersionRef, window: Window, kind: str, token: str,
                 dead: set[str], wait: float) -> Any | None:
    """Claim the window for ``token``: None when it is ours to record, else its complete run (recorded
    before, or by the claim's holder within ``wait`` seconds). InFlightError when the holder is still
    writing then. Promotions are not claimed: each one is its own record."""
    if kind != "check":
        return None
    deadline = time.monotonic() + wait
    while True:
        complete = check_runs(client, experiment_id, ref, kind=kind, window_id=window.window_id)
        if complete:
            return complete[-1]
        claim = read_claim(client, ref.model_id, _claim_prefix(kind, window.window_id))
        if claim is not None and claim.token == token:
            return None
        if claim is None or claim.token in dead or time.time() - claim.claimed_at > IN_FLIGHT_SECONDS:
            if try_claim(client, ref.model_id, _claim_prefix(kind, window.window_id),
                         0 if claim is None else claim.generation + 1, token):
                return None
            continue                                   # another check claimed it first: see who
        if time.monotonic() >= deadline:
            raise InFlightError(f"window {window.window_id!r} of {ref.name} version {ref.version} is being "
                                f"recorded by another check (claimed at {claim.when()}, attempt {claim.token[:12]})")
        time.sleep(_POLL_SECONDS)


def sync_spool(client, spool_dir: Path) -> list[dict[str, str]]:
    """Land every spooled check exactly once (or defer it, see _sync_entry); returns what happened to
    each entry.

    One sync at a time per spool (a lock file), so two syncs never record the same window twice.
    Every write attempt named in the spool failed, so a run made by any of them is dead, whichever
    entry names it (two failed checks of one window leave two entries).
    """
    with spool_lock(spool_dir):
        entries = read_entries(spool_dir)
        dead = {name for _, entry in entries for name in [*entry.attempts, entry.orphan_run_id] if name}
        return [_sync_entry(client, path, entry, dead) for path, entry in entries]


# An incomplete run this old belongs to a check that died, whoever started it: no check writes for an hour.
IN_FLIGHT_SECONDS = 3600


def _sync_entry(client, path: Path, entry: SpoolEntry, dead: set[str]) -> dict[str, str]:
    """Land one spooled check unless its window is recorded already, or another check is writing it now.

    An incomplete run of the window is a failed write when ``dead`` (attempt ids and run ids the
    spool names) holds its attempt id (set when the run was created, so also on a run whose id the
    check never learnt) or its run id; then, and when it is over an hour old (its start time by the
    writer's clock against this host's: clocks are assumed to agree within the hour), it is
    deleted. Any other is a concurrent check still writing: it is left alone and the entry waits
    for the next sync ("deferred").
    """
    ref = VersionRef(name=entry.model, version=entry.version, model_id=entry.model_id, tags={})
    window = Window(**{**entry.window, "window_end": datetime.fromisoformat(entry.window["window_end"])})
    with mlflow_errors(f"syncing {path.name}"):
        experiment_id = ensure_experiment(client)
        runs = search_checks(client, experiment_id, model=ref.name, version=ref.version, kind=entry.kind,
                             window_id=window.window_id, complete_only=False)
        complete, in_flight = [], []
        for run in runs:
            if is_complete(run):
                complete.append(run)
                if run.info.status == "RUNNING" and _dead(run, dead):    # the reply to its completion was lost
                    client.set_terminated(run.info.run_id, "FINISHED")
            elif _dead(run, dead):
                if discard_orphan(client, run.info.run_id):     # it completed since the search
                    complete.append(run)
            else:
                in_flight.append(run)
        if complete:
            _publish(client, experiment_id, ref, entry.kind)
    deferred = {"entry": path.name, "status": "deferred", "decision": entry.payload["decision"]["action"],
                "reason": "another check is writing this window now; the entry stays for the next sync"}
    if complete:
        run_id, status = complete[-1].info.run_id, "already recorded"
    elif in_flight:
        return {**deferred, "run_id": in_flight[-1].info.run_id}
    else:
        attempt = uuid.uuid4().hex
        try:
            with mlflow_errors(f"syncing {path.name}"):
                winner = _take_window(client, experiment_id, ref, window, entry.kind, attempt, dead, 0.0)
        except InFlightError:            # claimed by a live check that has not created its run yet
            return {**deferred, "run_id": "-"}
        if winner is not None:           # its holder landed it since the search
            with mlflow_errors(f"syncing {path.name}"):
                _publish(client, experiment_id, ref, entry.kind)
            run_id, status = winner.info.run_id, "already recorded"
        else:
            try:
                run_id = _record_and_publish(client, experiment_id, ref, window, CheckPayload(**entry.payload),
                                             entry.step, entry.kind, entry.extra_tags, attempt)
            except RecordingFailed as exc:   # keep the entry, now naming this attempt too
                kept = write_entry(path.parent, replace(entry, orphan_run_id=exc.orphan_run_id or
                                                        entry.orphan_run_id, reason=str(exc),
                                                        attempts=[*entry.attempts, attempt]))
                if kept != path:             # an entry from before attempt ids gets its new name
                    path.unlink()
                raise
            status = "recorded"
    path.unlink()
    return {"entry": path.name, "status": status, "run_id": run_id,
            "decision": entry.payload["decision"]["action"]}


def _dead(run, dead: set[str]) -> bool:
    """An incomplete run sync may delete: made by a failed write attempt, or abandoned."""
    if run.data.tags.get(tags.ATTEMPT) in dead or run.info.run_id in dead:
        return True
    return time.time() * 1000 - run.info.start_time > IN_FLIGHT_SECONDS * 1000


def _record_and_publish(client, experiment_id: str, ref: VersionRef, window: Window, payload: CheckPayload,
                        step: int, kind: str, extra_tags: dict[str, str], attempt: str) -> str:
    run_id = record_check(client, experiment_id, ref, window, payload, step, attempt=attempt, kind=kind,
                          extra_tags=extra_tags)
    with mlflow_errors(f"publishing the latest decision of {ref.name} version {ref.version}"):
        _publish(client, experiment_id, ref, kind)
    return run_id


def _publish(client, experiment_id: str, ref: VersionRef, kind: str) -> None:
    """A recorded check moves the version's latest-decision tags; a promotion run does not."""
    if kind == "check":
        publish_latest(client, ref, lambda: check_runs(client, experiment_id, ref))
