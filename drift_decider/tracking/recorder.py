"""Write one check to MLflow: a run with metrics, inputs, decision record, then the version's tags.

Order matters for honesty. Metrics, params and decision tags go in one batch; the decision record
follows; the run is marked complete last. Readers only trust complete runs, and a failure before
that point deletes the run, so MLflow never shows a decision without its run and metrics.
"""

from __future__ import annotations

import json
import tempfile
from datetime import timezone
from pathlib import Path
from typing import Any

from drift_decider.errors import TrackingError
from drift_decider.evidence import EvidenceReport
from drift_decider.tracking import tags
from drift_decider.tracking.registry import VersionRef
from drift_decider.window import Window


def decision_tags(decision, run_id: str | None = None) -> dict[str, str]:
    """The tags naming a decision, shared by the run and the model version."""
    out = {
        tags.DECISION: decision.action,
        tags.RULE: decision.rule_id or "",
        tags.DECIDED_AT: decision.to_dict()["decided_at"],
        tags.DECISION_ID: decision.decision_id,
        tags.POLICY: f"{decision.policy_name}@{decision.policy_version}",
        tags.POLICY_SHA256: decision.policy_sha256,
        tags.MODE: decision.mode,
    }
    if run_id:
        out[tags.RUN_ID] = run_id
    return out


def record_check(client, experiment_id: str, ref: VersionRef, window: Window, evidence: EvidenceReport,
                 decision, step: int, *, kind: str = "check", extra_params: dict[str, Any] | None = None) -> str:
    """Log the check as one complete run and return its id; raise TrackingError leaving nothing behind."""
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
    from mlflow.entities.logged_model_input import LoggedModelInput
    from mlflow.exceptions import MlflowException

    timestamp = int(window.window_end.timestamp() * 1000)
    run = None
    try:
        run = client.create_run(experiment_id, run_name=f"{ref.name}-v{ref.version}-{window.window_id}", tags={
            tags.MODEL: ref.name, tags.VERSION: ref.version, tags.WINDOW_ID: window.window_id,
            tags.WINDOW_END: window.window_end.astimezone(timezone.utc).isoformat(), tags.KIND: kind,
        })
        run_id = run.info.run_id
        metrics = [Metric(key, value, timestamp, step, model_id=ref.model_id, dataset_name=window.dataset_name,
                          dataset_digest=window.dataset_digest) for key, value in sorted(evidence.values().items())]
        params = {"seed": evidence.inputs.get("seed"), "n_reference": evidence.inputs.get("n_reference"),
                  "n_current": evidence.inputs.get("n_current"), "dim": evidence.inputs.get("dim"),
                  **(extra_params or {})}
        client.log_batch(run_id, metrics=metrics,
                         params=[Param(k, str(v)) for k, v in params.items() if v is not None],
                         tags=[RunTag(k, v) for k, v in decision_tags(decision, run_id).items()])
        client.log_inputs(run_id, datasets=[DatasetInput(
            Dataset(window.dataset_name, window.dataset_digest, "local", window.source),
            tags=[InputTag("mlflow.data.context", "current")])], models=[LoggedModelInput(ref.model_id)])
        _log_json_artifacts(client, run_id, {tags.DECISION_ARTIFACT: decision.to_dict(),
                                             tags.EVIDENCE_ARTIFACT: evidence.to_dict()})
        client.set_tag(run_id, tags.COMPLETE, "true")
        client.set_terminated(run_id, "FINISHED")
        return run_id
    except (MlflowException, OSError) as exc:
        _discard(client, run)
        raise TrackingError(f"MLflow failed while recording the check of {ref.name} version {ref.version} "
                            f"(window {window.window_id}); nothing was kept: {_short(exc)}") from exc


def publish_latest(client, ref: VersionRef, runs: list) -> None:
    """Point the version's tags at the decision of its latest window (by window end, not write order)."""
    if not runs:
        return
    latest = runs[-1]
    values = {key: latest.data.tags.get(key, "") for key in
              (tags.DECISION, tags.RULE, tags.DECIDED_AT, tags.DECISION_ID, tags.POLICY, tags.POLICY_SHA256,
               tags.MODE)}
    values[tags.RUN_ID] = latest.info.run_id
    values[tags.WINDOW_ID] = latest.data.tags[tags.WINDOW_ID]
    for key, value in values.items():
        client.set_model_version_tag(ref.name, ref.version, key, value)


def read_decision_record(client, run_id: str) -> dict[str, Any]:
    """The full decision record stored with a check run."""
    from drift_decider.tracking.connection import mlflow_errors

    with tempfile.TemporaryDirectory() as tmp, mlflow_errors(f"reading the decision record of run {run_id}"):
        path = client.download_artifacts(run_id, tags.DECISION_ARTIFACT, tmp)
        return json.loads(Path(path).read_text())


def _log_json_artifacts(client, run_id: str, documents: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for artifact_path, document in documents.items():
            path = Path(tmp) / artifact_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
        client.log_artifacts(run_id, tmp)


def _discard(client, run) -> None:
    """Best effort: a run that could not be completed is deleted so no reader mistakes it for a check."""
    if run is None:
        return
    try:
        client.set_terminated(run.info.run_id, "FAILED")
        client.delete_run(run.info.run_id)
    except Exception:  # the server is gone; readers still ignore runs without the complete tag
        pass


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
