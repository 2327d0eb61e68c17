"""Catch up what deliveries missed: MLflow keeps no delivery history, and a delivery that failed its
retries (receiver down, network) is gone. The registry and the recorded decisions say what is owed:

- a version with no reference gets one (its ``reference`` job);
- a version newer than the alias holder, and than any version a rollback moved the alias away
  from, with no gate decision for the alias is gated (``promote``, ``jobs.gate_not_owed``), newest
  first: the newest version that passes takes the alias and older ones are not walked through it; a
  candidate the gate blocked stays blocked (it is not gated again: a new version, or a person, moves
  the alias), and so does a rollback;
- the holder of an alias with ``check`` jobs is checked: the window id (``{today}`` by default) makes
  this once per window however often the pass runs.

Every job is the same API call a delivery would make, so a pass after a delivery did its work does nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from drift_decider import api
from drift_decider.api import VersionState
from drift_decider.automation.config import ALIAS_CREATED, VERSION_CREATED, Config, Job, ModelJobs
from drift_decider.automation.jobs import Event, gate_not_owed, run_jobs
from drift_decider.errors import error_message, exit_code


def reconcile(config: Config, *, tracking_uri: str | None, today: date | None = None) -> list[dict[str, Any]]:
    """One pass over every configured model; a model that cannot be read is one failed result."""
    results: list[dict[str, Any]] = []
    for model in config.models.values():
        try:
            _model(config, model, tracking_uri, today, results)
        except Exception as exc:  # noqa: BLE001 - one model's failure must not hold back the others
            results.append({"job": "reconcile", "model": model.name, "status": "failed", "error": error_message(exc),
                            "exit_code": int(exit_code(exc))})
    return results


def _model(config: Config, model: ModelJobs, tracking_uri: str | None, today: date | None,
           results: list[dict[str, Any]]) -> None:
    """Run what ``model`` is owed, appending each job's result to ``results`` as it comes, so the jobs
    that ran are reported even when a later read of the registry fails."""
    created = model.on.get(VERSION_CREATED, ())
    if created:
        holders = {job.alias: api.alias_holder(model.name, job.alias, tracking_uri=tracking_uri)
                   for job in created if job.kind == "promote"}
        states = api.version_states(model.name, tracking_uri=tracking_uri)
        for state in reversed(states):      # newest first: a version gated in is not walked past older ones
            owed = tuple(job for job in created if _owed(job, state, states, holders))
            if owed:
                done = run_jobs(config, Event(VERSION_CREATED, model.name, state.version), owed,
                                tracking_uri=tracking_uri, today=today)
                holders.update({job.alias: state.version for job, result in zip(owed, done)
                                if result.get("alias_moved")})
                results += done
    for job in model.on.get(ALIAS_CREATED, ()):
        holder = api.alias_holder(model.name, job.alias, tracking_uri=tracking_uri)
        if holder is not None:
            results += run_jobs(config, Event(ALIAS_CREATED, model.name, holder, job.alias), (job,),
                                tracking_uri=tracking_uri, today=today)


def _owed(job: Job, state: VersionState, states: list[VersionState], holders: dict[str | None, str | None]) -> bool:
    if job.kind == "reference":
        return not state.has_reference
    return gate_not_owed(state.version, job.alias, states, holders[job.alias]) is None
