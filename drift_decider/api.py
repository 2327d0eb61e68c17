"""The Python API: measure, set a reference, check a window. The CLI is a thin shell over these.

Every function validates all local input (policy, embeddings) before it talks to MLflow, and writes
to MLflow only after every measurement and the decision exist, so bad input never leaves a trace.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drift_decider import spool
from drift_decider.evidence import EvidenceReport
from drift_decider.loading import check_same_dim, load_embeddings
from drift_decider.measure import measure
from drift_decider.policy import evaluate, load_policy
from drift_decider.profile import EmbeddingProfile
from drift_decider.window import Window, make_window, parse_window_end


@dataclass(frozen=True)
class CheckOutcome:
    """What a check decided and where it is recorded (``run_id`` is None for a dry run)."""

    model: str
    version: str
    window: Window
    decision: dict[str, Any]          # the decision record, as stored in MLflow
    values: dict[str, float]          # the metric values the policy saw
    run_id: str | None
    already_recorded: bool = False    # the window had been decided before; nothing new was written

    @property
    def action(self) -> str:
        return self.decision["action"]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "window_id": self.window.window_id,
                "window_end": self.window.window_end.isoformat(), "run_id": self.run_id,
                "already_recorded": self.already_recorded, "action": self.action,
                "rule_id": self.decision.get("rule_id"), "decision_id": self.decision.get("decision_id"),
                "metrics": self.values, "decision": self.decision}


def measure_files(reference_path: str | Path, current_path: str | Path, *, seed: int = 0,
                  progress: bool = False) -> EvidenceReport:
    """Drift metrics between two embedding files, without MLflow."""
    reference = load_embeddings(reference_path)
    current = load_embeddings(current_path)
    check_same_dim(reference.dim, current, str(reference.path))
    return measure(reference.vectors, current.vectors, seed=seed, progress=progress)


def set_reference(model: str, version: str, embeddings_path: str | Path, *, tracking_uri: str | None = None,
                  seed: int = 0) -> str:
    """Summarise the embeddings once and store the profile with the model version; returns its URI."""
    from drift_decider.tracking.connection import connect
    from drift_decider.tracking.reference_store import store_reference
    from drift_decider.tracking.registry import resolve_version

    embeddings = load_embeddings(embeddings_path)
    profile = EmbeddingProfile.from_array(embeddings.vectors, seed=seed)
    client = connect(tracking_uri)
    return store_reference(client, resolve_version(client, model, version=version), profile)


def check(model: str, current_path: str | Path, policy_path: str | Path, *, version: str | None = None,
          alias: str | None = None, tracking_uri: str | None = None, window_id: str | None = None,
          window_end: str | None = None, dry_run: bool = False, seed: int = 0, progress: bool = False,
          spool_dir: str | Path | None = None) -> CheckOutcome:
    """Measure one window against the version's reference, decide with the policy, record in MLflow.

    Idempotent per (version, window id): a window decided before returns its recorded decision.
    """
    from drift_decider.tracking import history as tracking_history
    from drift_decider.tracking.connection import connect, resolve_tracking_uri
    from drift_decider.tracking.landing import land_check
    from drift_decider.tracking.recorder import CheckPayload
    from drift_decider.tracking.reference_store import load_reference
    from drift_decider.tracking.registry import find_experiment, resolve_version

    policy = load_policy(policy_path)
    current = load_embeddings(current_path)
    window = make_window(current, window_id, parse_window_end(window_end))
    uri = resolve_tracking_uri(tracking_uri)
    client = connect(uri)
    ref = resolve_version(client, model, version=version, alias=alias)
    experiment_id = find_experiment(client)
    if experiment_id is not None:
        earlier = tracking_history.check_runs(client, experiment_id, ref, window_id=window.window_id)
        if earlier:
            return _recorded_outcome(client, ref, window, earlier[-1])
    with tempfile.TemporaryDirectory() as tmp:
        reference = load_reference(client, uri, ref, Path(tmp))
    check_same_dim(reference.dim, current, f"the reference of {ref.name} version {ref.version}")
    evidence = measure(reference, current.vectors, seed=seed, progress=progress)
    runs = tracking_history.check_runs(client, experiment_id, ref) if experiment_id else []
    prior = [run for run in runs if tracking_history.window_end_of(run) < window.window_end]
    decision = evaluate(policy, evidence.values(), tracking_history.history_from_runs(prior), window.window_end,
                        context={"model": ref.name, "version": ref.version, "window_id": window.window_id})
    if dry_run:
        return CheckOutcome(ref.name, ref.version, window, decision.to_dict(), evidence.values(), run_id=None)
    payload = CheckPayload(values=evidence.values(), inputs=evidence.inputs, evidence=evidence.to_dict(),
                           decision=decision.to_dict())
    run_id = land_check(client, ref, window, payload, step=len(prior) + 1, spool_dir=spool.spool_dir(spool_dir))
    return CheckOutcome(ref.name, ref.version, window, payload.decision, payload.values, run_id=run_id)


def sync(*, tracking_uri: str | None = None, spool_dir: str | Path | None = None) -> list[dict[str, str]]:
    """Land the checks spooled while MLflow was unavailable."""
    from drift_decider.tracking.connection import connect
    from drift_decider.tracking.landing import sync_spool

    return sync_spool(connect(tracking_uri), spool.spool_dir(spool_dir))


def _recorded_outcome(client, ref, window: Window, run) -> CheckOutcome:
    from drift_decider.tracking.recorder import read_decision_record

    return CheckOutcome(ref.name, ref.version, window, read_decision_record(client, run.info.run_id),
                        dict(run.data.metrics), run_id=run.info.run_id, already_recorded=True)
