"""Land a check in MLflow, or spool it whole when MLflow fails, and replay the spool later."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

from drift_decider.errors import TrackingError
from drift_decider.spool import SpoolEntry, read_entries, spool_lock, write_entry
from drift_decider.tracking.connection import mlflow_errors
from drift_decider.tracking.history import check_runs, search_checks
from drift_decider.tracking.recorder import (CheckPayload, RecordingFailed, discard_orphan, publish_latest,
                                             record_check)
from drift_decider.tracking.registry import VersionRef, ensure_experiment
from drift_decider.window import Window


def land_check(client, ref: VersionRef, window: Window, payload: CheckPayload, step: int, *, spool_dir: Path,
               kind: str = "check", extra_tags: dict[str, str] | None = None) -> str:
    """Record the check and publish the version's latest decision; on failure spool it and raise."""
    try:
        return _record_and_publish(client, ref, window, payload, step, kind, extra_tags or {})
    except TrackingError as exc:
        entry = SpoolEntry(model=ref.name, version=ref.version, model_id=ref.model_id, kind=kind,
                           window={**asdict(window), "window_end": window.window_end.isoformat()},
                           payload=asdict(payload), step=step, extra_tags=extra_tags or {},
                           orphan_run_id=getattr(exc, "orphan_run_id", None), reason=str(exc))
        path = write_entry(spool_dir, entry)
        raise TrackingError(f"{exc}\nThe complete check (metrics and decision {payload.decision['action']!r}) "
                            f"was saved to {path}; run `drift-decider sync` once MLflow is back.") from exc


def sync_spool(client, spool_dir: Path) -> list[dict[str, str]]:
    """Land every spooled check exactly once; returns what happened to each entry.

    One sync at a time per spool (a lock file), so two syncs never record the same window twice.
    """
    with spool_lock(spool_dir):
        return [_sync_entry(client, path, entry) for path, entry in read_entries(spool_dir)]


def _sync_entry(client, path: Path, entry: SpoolEntry) -> dict[str, str]:
    ref = VersionRef(name=entry.model, version=entry.version, model_id=entry.model_id, tags={})
    window = Window(**{**entry.window, "window_end": datetime.fromisoformat(entry.window["window_end"])})
    with mlflow_errors(f"syncing {path.name}"):
        if entry.orphan_run_id:
            discard_orphan(client, entry.orphan_run_id)
        experiment_id = ensure_experiment(client)
        # a server that died while answering create_run leaves a run whose id the check never learnt
        for run in search_checks(client, experiment_id, model=ref.name, version=ref.version, kind=entry.kind,
                                 window_id=window.window_id, complete_only=False):
            discard_orphan(client, run.info.run_id)
    already = check_runs(client, experiment_id, ref, kind=entry.kind, window_id=window.window_id)
    if already:
        if entry.kind == "check":
            with mlflow_errors(f"publishing the latest decision of {ref.name} version {ref.version}"):
                publish_latest(client, ref, lambda: check_runs(client, experiment_id, ref))
        run_id, status = already[-1].info.run_id, "already recorded"
    else:
        try:
            run_id = _record_and_publish(client, ref, window, CheckPayload(**entry.payload), entry.step,
                                         entry.kind, entry.extra_tags)
        except RecordingFailed as exc:   # keep the entry, now naming the run this attempt left behind
            write_entry(path.parent, replace(entry, orphan_run_id=exc.orphan_run_id, reason=str(exc)))
            raise
        status = "recorded"
    path.unlink()
    return {"entry": path.name, "status": status, "run_id": run_id,
            "decision": entry.payload["decision"]["action"]}


def _record_and_publish(client, ref: VersionRef, window: Window, payload: CheckPayload, step: int, kind: str,
                        extra_tags: dict[str, str]) -> str:
    with mlflow_errors(f"preparing to record {ref.name} version {ref.version}"):
        experiment_id = ensure_experiment(client)
    run_id = record_check(client, experiment_id, ref, window, payload, step, kind=kind, extra_tags=extra_tags)
    with mlflow_errors(f"publishing the latest decision of {ref.name} version {ref.version}"):
        if kind == "check":
            publish_latest(client, ref, lambda: check_runs(client, experiment_id, ref))
    return run_id
