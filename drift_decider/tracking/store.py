"""The tracking store: the one owner of the MLflow client, the resolved tracking URI and the
experiment checks are logged to.

Everything above ``tracking/`` (``api.py``) talks to MLflow through a ``TrackingStore`` and gets plain
data back (rows, decision records, ``RecordedCheck``, ``VersionRef``): no MLflow object leaves this
package, so the rest of the code base cannot come to depend on MLflow's object model.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Mapping, TypeVar

from drift_decider.errors import InputError, TrackingError, redact
from drift_decider.evidence.assemble import ReferenceData
from drift_decider.policy import CheckRecord
from drift_decider.tracking.spool import SpoolEntry, spool_dir as resolve_spool_dir
from drift_decider.tracking import checks, landing, recorder, reference_store, registry, tags
from drift_decider.tracking.connection import connect, mlflow_errors
from drift_decider.tracking.recorder import CheckPayload
from drift_decider.tracking.registry import AliasState, VersionRef
from drift_decider.inputs.windows import Window

if TYPE_CHECKING:          # mlflow itself is imported where a call needs it: `drift-decider measure` never does
    from mlflow import MlflowClient

T = TypeVar("T")


@dataclass(frozen=True)
class RecordedCheck:
    """A window decided earlier, as it was recorded: what a repeated check of the window answers with."""

    run_id: str
    window_end: datetime
    dataset: tuple[str, str, str] | None      # name, digest and source of the data it was decided on
    metrics: dict[str, float]
    decision: dict[str, Any]


alias_problem = registry.alias_problem      # MLflow's alias rules, as api and the automation config check them


@dataclass(frozen=True)
class VersionState:
    """A registered version as the automation's reconcile pass reads it: what drift-decider recorded on it."""

    version: str
    has_reference: bool
    gated: Mapping[str, bool]       # alias -> whether its recorded promotion gate passed
    rolled_back: frozenset[str] = frozenset()     # aliases a rollback moved away from it


class TrackingStore:
    """One MLflow store (tracking and registry at one URI), opened once per command."""

    CHECKS_EXPERIMENT = registry.EXPERIMENT

    def __init__(self, client: MlflowClient) -> None:       # an MlflowClient from connection.connect
        self.client = client
        self.uri: str = client.tracking_uri       # resolved once, by connect
        self._experiment_id: str | None = None

    @classmethod
    def open(cls, tracking_uri: str | None = None, *, read_only: bool = False) -> TrackingStore:
        """``tracking_uri``, else MLflow's own choice (``MLFLOW_TRACKING_URI``, else its default), after a
        cheap request proves it answers. ``read_only`` never creates a store (see connection.connect)."""
        return cls(connect(tracking_uri, read_only=read_only))

    @property
    def shown_uri(self) -> str:
        """The URI as messages may print it: without credentials."""
        return redact(self.uri)

    # -- the experiment checks are logged to

    def experiment_id(self) -> str | None:
        """The checks' experiment, or None before the first check (reads never create it)."""
        if self._experiment_id is None:
            self._experiment_id = registry.find_experiment(self.client)
        return self._experiment_id

    def create_experiment(self, name: str, artifact_location: Path) -> str:
        """A new experiment whose artifacts go to ``artifact_location`` (the demo keeps all in one folder)."""
        with mlflow_errors(f"creating experiment {name!r}"):
            return self.client.create_experiment(name, artifact_location=artifact_location.as_uri())

    # -- the registry

    def require_model(self, name: str) -> None:
        with mlflow_errors(f"looking up model {name!r}"):
            registry.require_model(self.client, name)

    def version(self, name: str, version: str | None = None, alias: str | None = None, *,
                attach: bool = False) -> VersionRef:
        return registry.resolve_version(self.client, name, version=version, alias=alias, attach=attach)

    def register_model(self, name: str, *, tags: dict[str, str] | None = None,
                       experiment_id: str | None = None) -> VersionRef:
        """A new version of an externally hosted model, its LoggedModel in ``experiment_id`` (default: the
        checks' experiment, created if new)."""
        with mlflow_errors(f"registering a version of {name!r}"):
            experiment_id = experiment_id or registry.ensure_experiment(self.client)
        return registry.register_external_model(self.client, self.uri, name, experiment_id=experiment_id,
                                                tags=tags)

    def alias_state(self, name: str, alias: str) -> AliasState:
        return registry.alias_state(self.client, name, alias)

    def roll_back(self, name: str, alias: str, to_version: str, token: str) -> str | None:
        """Move ``alias`` back to the older ``to_version`` unless it holds it already, compare-and-set like
        a promotion (registry.move_alias); returns the version that held it before. The version moved
        away from is tagged first (tags.ROLLED_BACK), so the automation never gates it again for the alias.
        An unset alias (a typo, most likely) and a version newer than the holder are refused, unless the
        holder's passed gate for this alias moved the alias from it (the undo `promote` prints): moving
        an alias forward is a promotion, through its gate."""
        with mlflow_errors(f"moving alias {alias!r} of {name!r}"):
            registry.require_model(self.client, name)
            target = registry.resolve_version(self.client, name, version=to_version)
            seen = registry.alias_state(self.client, name, alias)
            if seen.holder is None:
                raise InputError(f"alias {alias!r} of {name!r} is not set: rollback moves an alias back to a "
                                 f"version that held it; set one through the gate with `drift-decider promote`")
            if seen.holder == target.version:
                return seen.holder
            replaced = registry.resolve_version(self.client, name, version=seen.holder).tags.get(
                tags.REPLACED + alias)      # what the holder's passed gate moved the alias away from
            if int(target.version) > int(seen.holder) and target.version != replaced:
                raise InputError(f"version {target.version} is newer than version {seen.holder}, which holds "
                                 f"{alias!r}, and no recorded promotion moved the alias from it: rollback moves "
                                 f"an alias back; promote a newer version through its gate with "
                                 f"`drift-decider promote`")
            self.client.set_model_version_tag(name, seen.holder, tags.ROLLED_BACK + alias, target.version)
            try:
                registry.move_alias(self.client, name, alias, seen, target.version, token=token)
            except BaseException:       # nothing was rolled back: the automation may gate the holder again
                self.client.delete_model_version_tag(name, seen.holder, tags.ROLLED_BACK + alias)
                raise
        return seen.holder

    # -- registry automation (drift_decider.automation): what its reconcile pass reads, and its webhooks

    def version_states(self, name: str) -> list[VersionState]:
        """Every version of ``name``, oldest first, with its reference and gate tags read as facts."""
        found, token = [], None
        with mlflow_errors(f"listing the versions of {name!r}"):
            registry.require_model(self.client, name)
            while True:
                page = self.client.search_model_versions(f"name = {registry.quoted(name)}", max_results=200,
                                                          page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    break
        return sorted((_version_state(str(mv.version), mv.tags or {}) for mv in found),
                      key=lambda state: int(state.version))

    def version_state(self, name: str, version: str) -> VersionState:
        """One version of ``name``, as ``version_states`` reads it (one registry request)."""
        with mlflow_errors(f"reading version {version} of {name!r}"):
            return _version_state(version, registry.resolve_version(self.client, name, version=version).tags)

    def register_webhook(self, name: str, url: str, events: list[str], secret: str,
                         description: str) -> dict[str, Any]:
        """Create the webhook ``name``, or update the one of that name, so registering twice is harmless.
        Returns its id, url, events and status (never the secret)."""
        with mlflow_errors(f"registering webhook {name!r}"):
            existing, token = None, None
            while existing is None:
                page = self.client.list_webhooks(max_results=100, page_token=token)
                existing = next((hook for hook in page if hook.name == name), None)
                token = page.token
                if not token:
                    break
            if existing is None:
                hook = self.client.create_webhook(name, url, events, description=description, secret=secret)
            else:
                hook = self.client.update_webhook(existing.webhook_id, url=url, events=events,
                                                  description=description, secret=secret, status="ACTIVE")
        return {"webhook_id": hook.webhook_id, "name": hook.name, "url": hook.url, "created": existing is None,
                "events": sorted(f"{event.entity.value}.{event.action.value}" for event in hook.events),
                "status": str(hook.status.value)}

    # -- references

    def refuse_replacing(self, ref: VersionRef, replace_existing: bool) -> None:
        """InputError when the version has a reference and replacing it was not asked for: every check
        recorded so far was judged against it, and its floor and samples would be lost silently."""
        if ref.tags.get(tags.REFERENCE_URI) and not replace_existing:
            raise InputError(f"{ref.name} version {ref.version} has a reference already (its checks were judged "
                             f"against it); give --replace to store this one instead, with its own queries and "
                             f"siblings: nothing of the old one is kept")

    def store_reference(self, ref: VersionRef, reference: ReferenceData, *,
                        replace_existing: bool = False) -> str:
        """Store the version's reference (one it has already only with ``replace_existing``)."""
        self.refuse_replacing(ref, replace_existing)
        return reference_store.store_reference(self.client, ref, reference)

    def load_reference(self, ref: VersionRef) -> ReferenceData:
        """The version's reference, verified, in memory (the downloaded files are deleted)."""
        with tempfile.TemporaryDirectory() as tmp:
            return reference_store.load_reference(self.client, self.uri, ref, Path(tmp))

    # -- recorded checks

    def recorded_check(self, ref: VersionRef, window_id: str) -> RecordedCheck | None:
        """The complete check of this window of the version, if one was recorded."""
        experiment_id = self.experiment_id()
        runs = checks.check_runs(self.client, experiment_id, ref, window_id=window_id) if experiment_id else []
        return self._recorded(runs[-1]) if runs else None

    def checks_before(self, ref: VersionRef, window_end: datetime) -> tuple[CheckRecord, ...]:
        """The version's complete checks of windows ending before ``window_end``, as the policy reads them."""
        experiment_id = self.experiment_id()
        runs = checks.check_runs(self.client, experiment_id, ref) if experiment_id else []
        return checks.records_from_runs([run for run in runs if checks.window_end_of(run) < window_end])

    def check_rows(self, model: str, version: str | None = None) -> list[dict[str, Any]]:
        """Every complete check of a model (or one version), oldest window first, as plain rows."""
        experiment_id = self.experiment_id()
        runs = checks.search_checks(self.client, experiment_id, model=model, version=version) if experiment_id else []
        return [checks.check_row(run) for run in runs]

    def audit_record(self, *, decision_id: str | None = None, model: str | None = None,
                     version: str | None = None, window_id: str | None = None) -> dict[str, Any] | None:
        """The full record of one decision (see api.audit), or None when the store has no such decision."""
        experiment_id = self.experiment_id()
        if experiment_id is None:
            return None
        if window_id is not None:
            runs = checks.search_checks(self.client, experiment_id, model=model, version=version,
                                         window_id=window_id)
            run = runs[-1] if runs else None
        else:
            run = checks.find_decision_run(self.client, experiment_id, decision_id)
        if run is None:
            return None
        run_id = run.info.run_id
        with mlflow_errors(f"reading run {run_id}"):
            evidence = recorder.read_json_artifact(self.client, run_id, tags.EVIDENCE_ARTIFACT)
        return {"run_id": run_id, "experiment_id": experiment_id, "run_tags": dict(run.data.tags),
                "metrics": dict(run.data.metrics), "params": dict(run.data.params),
                "decision": recorder.read_decision_record(self.client, run_id), "evidence": evidence}

    def _recorded(self, run: Any) -> RecordedCheck:
        dataset = next(iter(run.inputs.dataset_inputs), None) if run.inputs else None
        return RecordedCheck(run.info.run_id, checks.window_end_of(run),
                             None if dataset is None else (dataset.dataset.name, dataset.dataset.digest,
                                                           dataset.dataset.source),
                             dict(run.data.metrics), recorder.read_decision_record(self.client, run.info.run_id))

    # -- writing a check: claim the window, decide in order, land (or spool)

    def claim_window(self, ref: VersionRef, window: Window, attempt: str) -> RecordedCheck | None:
        """Make ``attempt`` the one check that records ``window`` (landing.claim_window); the window's
        recorded check instead when another check recorded it."""
        recorded = landing.claim_window(self, ref, window, attempt)
        return None if recorded is None else self._recorded(recorded)

    def holding_window(self, ref: VersionRef, window: Window, attempt: str) -> ContextManager[None]:
        """Release the window's claim when the block fails, unless the check was spooled (landing.holding_window)."""
        return landing.holding_window(self, ref, window, attempt)

    def decide_in_order(self, ref: VersionRef, window: Window, decide: Callable[[tuple[CheckRecord, ...]], T], *,
                        settle_until: float = 0.0) -> tuple[T, list[dict[str, Any]]]:
        """``decide`` on the version's history before ``window`` once every earlier claimed window is
        recorded (landing.decide_in_order); returns the decision and that history as plain rows."""
        decision, prior = landing.decide_in_order(self, ref, window,
                                                  lambda runs: decide(checks.records_from_runs(runs)),
                                                  settle_until=settle_until)
        return decision, [checks.check_row(run) for run in prior]

    def newest_check_id(self, ref: VersionRef) -> str | None:
        """The run id of the version's latest window's check (one request, however long the history)."""
        experiment_id = self.experiment_id()
        runs = checks.check_runs(self.client, experiment_id, ref, newest=True) if experiment_id else []
        return runs[0].info.run_id if runs else None

    def check_row(self, run_id: str) -> dict[str, Any]:
        """One complete check run as a plain row (as check_rows gives them)."""
        with mlflow_errors(f"reading run {run_id}"):
            return checks.check_row(self.client.get_run(run_id))

    def land_check(self, ref: VersionRef, window: Window, payload: CheckPayload, step: int, *,
                   spool_dir: str | Path | None, kind: str = "check", extra_tags: dict[str, str] | None = None,
                   attempt: str | None = None) -> tuple[str, RecordedCheck | None]:
        """Record the check (landing.land_check): its run id, and the check that recorded the window
        instead when another check held its claim (then nothing of this one was written)."""
        landed = landing.land_check(self, ref, window, payload, step, spool_dir=resolve_spool_dir(spool_dir),
                                    kind=kind, extra_tags=extra_tags, attempt=attempt)
        return landed.run_id, None if landed.recorded_by is None else self._recorded(landed.recorded_by)

    def spool_undecided(self, ref: VersionRef, window: Window, payload: CheckPayload, *,
                        spool_dir: str | Path | None, attempt: str, policy_path: str, policy_sha256: str,
                        exc: TrackingError) -> TrackingError:
        return landing.spool_undecided(self, ref, window, payload, spool_dir=resolve_spool_dir(spool_dir),
                                       attempt=attempt,
                                       policy_path=policy_path, policy_sha256=policy_sha256, exc=exc)

    def attach_report(self, ref: VersionRef, run_id: str, html: str) -> None:
        """Attach the version's drift report to a landed check's run and refresh it on the version's
        LoggedModel (recorder.attach_report)."""
        with mlflow_errors(f"attaching the drift report of {ref.name} version {ref.version} to run {run_id}"):
            recorder.attach_report(self.client, ref, run_id, html)

    def publish_promotion(self, ref: VersionRef, alias: str, seen: AliasState, decision: dict[str, Any],
                          run_id: str, gate_tags: dict[str, str], *, passed: bool) -> None:
        """After the gate's run landed: move the alias when it passed (a promotion that lost the race
        raises InFlightError here, its candidate untagged), then tag the candidate with the gate."""
        per_alias = {tags.GATED + alias: "passed" if passed else "blocked"}
        if passed:
            per_alias[tags.REPLACED + alias] = seen.holder or ""
        earlier = ref.tags.get(tags.PREFIX + "promotion.alias")      # a gate recorded before per-alias tags
        if earlier and tags.GATED + earlier not in ref.tags and earlier != alias:
            per_alias[tags.GATED + earlier] = ("passed" if ref.tags.get(tags.PREFIX + "promotion.passed") == "true"
                                               else "blocked")
        with mlflow_errors(f"recording the promotion decision on {ref.name} version {ref.version}"):
            if passed:
                registry.move_alias(self.client, ref.name, alias, seen, ref.version, token=run_id)
            recorder.publish_promotion(self.client, ref, decision, run_id, {**gate_tags, **per_alias})


def sync_spool(spool_dir: str | Path | None, tracking_uri: str | None,
               decide: Callable[[SpoolEntry, tuple[CheckRecord, ...]], dict[str, Any]],
               landed: Callable[[TrackingStore, VersionRef, str], None]) -> list[dict[str, str]]:
    """Land every spooled check (landing.sync_spool); ``decide`` decides one measured but never decided,
    ``landed`` is called with each check run recorded."""
    return landing.sync_spool(resolve_spool_dir(spool_dir), lambda uri: TrackingStore.open(uri, read_only=True),
                              tracking_uri,
                              decide=lambda entry, runs: decide(entry, checks.records_from_runs(runs)), landed=landed)


def _version_state(version: str, version_tags: dict[str, str]) -> VersionState:
    """What drift-decider recorded on a version, from its tags: a reference, its gates and rollbacks."""
    latest = tags.PREFIX + "promotion."      # a gate recorded before per-alias tags: its latest only
    gated = ({version_tags[latest + "alias"]: version_tags.get(latest + "passed") == "true"}
             if version_tags.get(latest + "alias") else {})
    gated.update({key.removeprefix(tags.GATED): value == "passed" for key, value in version_tags.items()
                  if key.startswith(tags.GATED)})
    return VersionState(version, bool(version_tags.get(tags.REFERENCE_URI)), gated,
                        frozenset(key.removeprefix(tags.ROLLED_BACK) for key in version_tags
                                  if key.startswith(tags.ROLLED_BACK)))
