"""Write one check to MLflow: a run with metrics, inputs, decision record, then the version's tags.

Order matters for honesty. Params and decision tags go in one batch; the decision record follows;
the metrics go last, in one request with the mark that the run is complete (the LoggedModel keeps
metrics of deleted runs). Readers only trust complete runs, and a failure before that point deletes
the run, so MLflow never shows a decision without its run and metrics.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import timezone
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from drift_decider.errors import TrackingError
from drift_decider.policy.decision import held_rules
from drift_decider.tracking import tags
from drift_decider.tracking.registry import VersionRef
from drift_decider.inputs.windows import Window

if TYPE_CHECKING:      # MLflow's types, for annotations only (mlflow loads when a call needs it)
    from mlflow import MlflowClient
    from mlflow.entities import Run


def decision_tags(decision: dict[str, Any], run_id: str | None = None) -> dict[str, str]:
    """The tags naming a decision (from its record), shared by the run and the model version."""
    policy = decision.get("policy", {})
    out = {
        tags.DECISION: decision["action"],
        tags.RULE: decision.get("rule_id") or "",
        tags.DECIDED_AT: str(decision["decided_at"]),
        tags.DECISION_ID: decision["decision_id"],
        tags.POLICY: f"{policy.get('name')}@{policy.get('version')}",
        tags.POLICY_SHA256: policy.get("sha256", ""),
        tags.MODE: decision.get("mode", "enforce"),
        tags.HELD: held_rules(decision),
    }
    if run_id:
        out[tags.RUN_ID] = run_id
    return out


class RecordingFailed(TrackingError):
    """The check could not be written; ``orphan_run_id`` names an incomplete run left on a dead server."""

    def __init__(self, message: str, orphan_run_id: str | None = None) -> None:
        self.orphan_run_id = orphan_run_id
        super().__init__(message)


@dataclass(frozen=True)
class CheckPayload:
    """Everything a check writes, as plain data, so a spooled check can be replayed as it was."""

    values: dict[str, float]
    inputs: dict[str, Any]
    evidence: dict[str, Any]
    decision: dict[str, Any] | None     # None: measured, to be decided at sync (MLflow failed first)


def record_check(client: MlflowClient, experiment_id: str, ref: VersionRef, window: Window, record: CheckPayload,
                 step: int, *, attempt: str, kind: str = "check", extra_tags: dict[str, str] | None = None) -> str:
    """Log the check as one complete run and return its id; raise TrackingError leaving nothing behind.

    ``attempt`` (a random id chosen before the run exists) is a tag of the run from its creation, so
    a run the server created while the check never learnt its id can still be told apart from a
    run another check is writing."""
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
    from mlflow.entities.logged_model_input import LoggedModelInput
    from mlflow.exceptions import MlflowException

    timestamp = int(window.window_end.timestamp() * 1000)
    run = None
    try:
        run = client.create_run(experiment_id, run_name=run_name(ref, window), tags={
            tags.MODEL: ref.name, tags.VERSION: ref.version, tags.WINDOW_ID: window.window_id,
            tags.WINDOW_END: window.window_end.astimezone(timezone.utc).isoformat(), tags.KIND: kind,
            tags.ATTEMPT: attempt,
        })
        run_id = run.info.run_id
        metrics = [Metric(key, value, timestamp, step, model_id=ref.model_id, dataset_name=window.dataset_name,
                          dataset_digest=window.dataset_digest) for key, value in sorted(record.values.items())]
        params = {key: value for key, value in record.inputs.items() if isinstance(value, (int, float, str))}
        params |= {tags.WINDOW_END_MS: timestamp, tags.WINDOW_INDEX: step}
        run_tags = {**decision_tags(record.decision, run_id), **(extra_tags or {})}
        client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in sorted(params.items())],
                         tags=[RunTag(k, v) for k, v in run_tags.items()])
        client.log_inputs(run_id, datasets=[DatasetInput(
            Dataset(window.dataset_name, window.dataset_digest, "local", window.source),
            tags=[InputTag("mlflow.data.context", "current")])], models=[LoggedModelInput(ref.model_id)])
        _log_json_artifacts(client, run_id, {tags.DECISION_ARTIFACT: record.decision,
                                             tags.EVIDENCE_ARTIFACT: record.evidence})
        # The LoggedModel keeps the metrics of a run deleted later (MLflow cannot delete them), so the
        # metrics go last, in the same request as the completion tag: none lands without the other
        # unless the server dies inside that request. (A check logs ~100 metrics; any beyond one
        # request's worth go just before.)
        head, last = metrics[:-_METRICS_WITH_COMPLETION], metrics[-_METRICS_WITH_COMPLETION:]
        if head:
            client.log_batch(run_id, metrics=head)
        client.log_batch(run_id, metrics=last, tags=[RunTag(tags.COMPLETE, "true")])
        client.set_terminated(run_id, "FINISHED")
        return run_id
    except (MlflowException, OSError) as exc:
        outcome = "none" if run is None else _settle_failed_write(client, run.info.run_id, set(record.values))
        if outcome == "complete":
            return run.info.run_id
        raise RecordingFailed(f"MLflow failed while recording the check of {ref.name} version {ref.version} "
                              f"(window {window.window_id}): {_short(exc)}",
                              orphan_run_id=run.info.run_id if outcome == "orphan" else None) from exc


_METRICS_WITH_COMPLETION = 999      # MLflow takes 1,000 entities per log_batch request; one is the tag


def run_name(ref: VersionRef, window: Window) -> str:
    """What the runs list shows: model, version and window, e.g. ``recs v3 · 2026-w10``."""
    return f"{ref.name} v{ref.version} · {window.window_id}"


def attach_report(client: MlflowClient, ref: VersionRef, run_id: str, html: str) -> None:
    """The version's drift report as an artifact of the check's run, and the same file on the version's
    LoggedModel (overwritten: the model page shows the latest report)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder, name = tags.REPORT_ARTIFACT.rsplit("/", 1)
        path = Path(tmp) / name
        path.write_text(html, encoding="utf-8")
        client.log_artifact(run_id, str(path), folder)
        if ref.model_id:
            client.log_model_artifact(ref.model_id, str(path), folder)


def _settle_failed_write(client: MlflowClient, run_id: str, metric_keys: set[str]) -> str:
    """After a failed write: "complete" when the run holds every metric (only the reply was lost, or a
    store that commits metrics and tags apart, as MLflow's SQL store does, failed on the tag): its
    metrics are on the model already, so the run is completed and counts rather than deleted beside
    them; "deleted" when the incomplete run is gone; "orphan" when the server is unreachable (sync
    deletes the run later; readers ignore it meanwhile, as it lacks the complete tag)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
        if run.info.lifecycle_stage == "active" and not is_complete(run) and metric_keys <= set(run.data.metrics):
            client.set_tag(run_id, tags.COMPLETE, "true")     # everything else was written before the metrics
        if discard_orphan(client, run_id):
            client.set_terminated(run_id, "FINISHED")
            return "complete"
        return "deleted"
    except (MlflowException, OSError):
        return "orphan"


def publish_latest(client: MlflowClient, ref: VersionRef, list_runs: Callable[[], list], attempts: int = 8) -> None:
    """Point the version's tags at the decision of its latest window (by window end, not write order):
    the last run ``list_runs`` returns (landing searches for that one run only).

    Tags are last-write-wins and several checks may publish at once (MLflow's sqlite store even
    rejects two simultaneous writes of one tag), so publish, read back and repeat until the tags
    agree with the latest complete run. tags.LATEST, one tag holding them all, is written first: a
    failure after it leaves the others lagging, never that tag mixed.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        runs = list_runs()
        if not runs:
            return
        latest = runs[-1]
        wanted = {key: latest.data.tags.get(key, "") for key in
                  (tags.DECISION, tags.RULE, tags.DECIDED_AT, tags.DECISION_ID, tags.POLICY, tags.POLICY_SHA256,
                   tags.MODE, tags.WINDOW_ID)}
        wanted[tags.RUN_ID] = latest.info.run_id
        wanted = {tags.LATEST: json.dumps(wanted, sort_keys=True, separators=(",", ":")), **wanted}   # first
        present = client.get_model_version(ref.name, ref.version).tags or {}
        stale = {key: value for key, value in wanted.items() if present.get(key) != value}
        if not stale:
            return
        try:
            for key, value in stale.items():
                client.set_model_version_tag(ref.name, ref.version, key, value)
        except MlflowException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))   # a concurrent writer won this round; read again


def publish_promotion(client: MlflowClient, ref: VersionRef, decision: dict[str, Any], run_id: str,
                      gate_tags: dict[str, str]) -> None:
    """Tag the candidate with its gate decision (under ``drift_decider.promotion.``) and the gate facts."""
    prefixed = {key.replace(tags.PREFIX, tags.PREFIX + "promotion.", 1): value
                for key, value in decision_tags(decision, run_id).items()}
    for key, value in {**prefixed, **gate_tags}.items():
        client.set_model_version_tag(ref.name, ref.version, key, value)


def read_decision_record(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """The full decision record stored with a check run."""
    return read_json_artifact(client, run_id, tags.DECISION_ARTIFACT)


def read_json_artifact(client: MlflowClient, run_id: str, artifact_path: str) -> dict[str, Any]:
    from drift_decider.tracking.connection import mlflow_errors

    with tempfile.TemporaryDirectory() as tmp, mlflow_errors(f"reading {artifact_path} of run {run_id}"):
        path = client.download_artifacts(run_id, artifact_path, tmp)
        return json.loads(Path(path).read_text())


def _log_json_artifacts(client: MlflowClient, run_id: str, documents: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for artifact_path, document in documents.items():
            path = Path(tmp) / artifact_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
        client.log_artifacts(run_id, tmp)


def is_complete(run: Run) -> bool:
    """Whether every part of the check was written (readers trust nothing else)."""
    return run.data.tags.get(tags.COMPLETE) == "true"


def discard_orphan(client: MlflowClient, run_id: str) -> bool:
    """Delete a run left incomplete by a failed check (called by sync once the server is back);
    returns True if it turned out to be complete and active after all (then it stays and records
    the window). A run that no longer exists is False; any other error is raised."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    if run.info.lifecycle_stage != "active":
        return False
    if is_complete(run):
        return True
    client.delete_run(run_id)
    return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
