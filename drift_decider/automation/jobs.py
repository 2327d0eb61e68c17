"""From a registry event to the API calls the config names: `reference set`, `promote`, `check`.

Each job is one call of ``drift_decider.api``, so what it records is what the CLI would record, and
the API's guarantees hold for retried and concurrent deliveries too (one check run per window; a
promotion moves the alias compare-and-set, InFlightError when another moved it). Jobs of one event
run in the order written; after a failure the rest are skipped (a gate needs the reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Sequence

from drift_decider import api
from drift_decider.api import VersionState
from drift_decider.automation.config import (ALIAS_CREATED, VERSION_CREATED, Config, Job, check_version,
                                             template_values)
from drift_decider.errors import InputError, error_message, exit_code

# what a log line keeps of an outcome: the decision and where it is recorded, not every metric
_SUMMARY_KEYS = ("window_id", "action", "rule_id", "decision_id", "run_id", "already_recorded", "passed",
                 "alias_moved", "previous_holder", "already_held", "undo")


@dataclass(frozen=True)
class Event:
    """A registry event the automation acts on."""

    name: str                  # VERSION_CREATED or ALIAS_CREATED
    model: str
    version: str
    alias: str | None = None


def parse_event(payload: Any) -> Event | None:
    """The event of a delivery's JSON body; None for one no job can be about. InputError when malformed."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise InputError("the delivery is not a JSON object with a `data` object")
    name = f"{payload.get('entity')}.{payload.get('action')}"
    data = payload["data"]
    if name not in (VERSION_CREATED, ALIAS_CREATED):
        return None
    if not isinstance(data.get("name"), str) or (name == ALIAS_CREATED and not isinstance(data.get("alias"), str)):
        raise InputError(f"the {name} delivery has no model name" + (" or alias" if name == ALIAS_CREATED else ""))
    return Event(name, data["name"], check_version(data.get("version")), data.get("alias"))


def jobs_for(config: Config, event: Event) -> tuple[Job, ...]:
    """The config's jobs for this event: of its model, and for an alias event, of that alias."""
    model = config.models.get(event.model)
    jobs = () if model is None else model.on.get(event.name, ())
    return tuple(job for job in jobs if event.name != ALIAS_CREATED or job.alias == event.alias)


def run_jobs(config: Config, event: Event, jobs: tuple[Job, ...], *, tracking_uri: str | None,
             today: date | None = None) -> list[dict[str, Any]]:
    """Run ``jobs`` in order; one result each (done, failed with the error, or skipped after a failure)."""
    results, failed = [], False
    for job in jobs:
        head = {"job": job.kind, "model": event.model, "version": event.version, "event": event.name}
        if failed:
            results.append({**head, "status": "skipped", "reason": "an earlier job of this event failed"})
            continue
        try:
            results.append({**head, "status": "done", **_run(config, job, event, tracking_uri, today)})
        except Exception as exc:  # noqa: BLE001 - a job's failure is its result; the receiver goes on
            failed = True
            results.append({**head, "status": "failed", "error": error_message(exc), "exit_code": int(exit_code(exc))})
    return results


def _run(config: Config, job: Job, event: Event, tracking_uri: str | None, today: date | None) -> dict[str, Any]:
    values = template_values(event.model, event.version, event.alias, today)

    def path(option: str) -> Path | None:
        return job.path(option, values, config.base)

    spool_dir = config.state_dir / "spool"
    if job.kind == "reference":
        if api.version_state(event.model, event.version, tracking_uri=tracking_uri).has_reference:
            return {"reference": "kept: the version has one already (the receiver never replaces a reference)"}
        uri = api.set_reference(event.model, event.version, path("embeddings"), queries_path=path("queries"),
                                sibling_paths=[config.base / item.format(**values) for item in job.siblings],
                                tracking_uri=tracking_uri)
        return {"reference": uri}
    inputs = {"catalog_path": path("catalog"), "queries_path": path("queries"), "index_path": path("index")}
    if job.kind == "promote":
        reason = gate_not_owed(event.version, job.alias, api.version_states(event.model, tracking_uri=tracking_uri),
                               api.alias_holder(event.model, job.alias, tracking_uri=tracking_uri))
        if reason is not None:      # a late or repeated delivery must not move the alias back
            return {"promote": f"skipped: {reason}"}
        outcome = api.promote(event.model, event.version, job.alias, path("current"), job.policy,
                              tracking_uri=tracking_uri, spool_dir=spool_dir, **inputs).to_dict()
    else:
        outcome = api.check(event.model, path("current"), job.policy, version=event.version,
                            tracking_uri=tracking_uri, window_id=job.window_id.format(**values),
                            spool_dir=spool_dir, **inputs).to_dict()
    return {key: outcome[key] for key in _SUMMARY_KEYS if key in outcome}


def gate_not_owed(version: str, alias: str, states: Sequence[VersionState], holder: str | None) -> str | None:
    """Why the automation does not gate ``version`` for ``alias`` (None: it does). Only a version newer
    than where the alias is, than every version a rollback moved it away from and than every version
    that passed a gate for it, is gated, and once:
    MLflow may deliver events late or twice, and a person's rollback must stay."""
    backed = [int(state.version) for state in states if alias in state.rolled_back]
    state = next((state for state in states if state.version == version), None)
    if holder is not None and int(version) <= int(holder):
        return f"version {holder} holds {alias!r}, and version {version} is not newer"
    if backed and int(version) <= max(backed):
        return f"{alias!r} was rolled back from version {max(backed)}, and version {version} is not newer"
    passed = [int(other.version) for other in states if other.gated.get(alias)]
    if passed and int(version) < max(passed):      # superseded: a person's move below it must stay
        return f"version {max(passed)} passed its gate for {alias!r}, and version {version} is older"
    if state is not None and alias in state.gated:
        return f"its gate for {alias!r} is recorded ({'passed' if state.gated[alias] else 'blocked'})"
    return None
