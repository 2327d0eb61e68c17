"""Land a check in MLflow, or spool it whole when MLflow fails, and replay the spool later: the
TrackingStore's write protocol (claims, decide in order, record, spool, sync), over the store's client."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from drift_decider.errors import InFlightError, InputError, PolicyError, TrackingError, redact
from drift_decider.tracking.spool import SpoolEntry, read_entries, spool_lock, write_entry
from drift_decider.tracking import tags
from drift_decider.tracking.connection import mlflow_errors
from drift_decider.tracking.checks import check_runs, search_checks, window_end_of
from drift_decider.tracking.recorder import (CheckPayload, RecordingFailed, discard_orphan, is_complete,
                                             publish_latest, record_check)
from drift_decider.tracking.registry import (RELEASED, Claim, VersionRef, claim_prefix, ensure_experiment, read_claim,
                                             read_claims, try_claim)
from drift_decider.inputs.times import parse_time
from drift_decider.inputs.windows import Window

if TYPE_CHECKING:      # for annotations only: the store calls this module (mlflow loads when a call needs it)
    from mlflow.entities import Run

    from drift_decider.tracking.store import TrackingStore


@dataclass(frozen=True)
class Landed:
    """Where a check landed: its own run, or (``recorded_by``) the complete run of another check of the
    same window that held the window's claim, in which case nothing of this check was written."""

    run_id: str
    recorded_by: Any | None = None


def land_check(store: TrackingStore, ref: VersionRef, window: Window, payload: CheckPayload, step: int, *,
               spool_dir: Path, kind: str = "check", extra_tags: dict[str, str] | None = None,
               attempt: str | None = None) -> Landed:
    """Record the check and publish the version's latest decision, unless another check of the window
    holds its claim (then its run, once complete); on failure, or when that check is still writing
    after WAIT_SECONDS, spool this one and raise. ``attempt`` is the token of the window's claim when
    the check took it before measuring (claim_window)."""
    attempt = attempt or uuid.uuid4().hex
    try:
        with mlflow_errors(f"preparing to record {ref.name} version {ref.version}"):
            experiment_id = ensure_experiment(store.client)
            winner = _take_window(store, experiment_id, ref, window, kind, attempt, set(), WAIT_SECONDS)
        if winner is not None:
            return Landed(winner.info.run_id, recorded_by=winner)
        return Landed(_record_and_publish(store, experiment_id, ref, window, payload, step, kind,
                                          extra_tags or {}, attempt))
    except TrackingError as exc:
        path = _spool(store, spool_dir, ref, window, payload, step, kind, extra_tags or {}, attempt, exc)
        then = ("run `drift-decider sync` once MLflow is back" if kind == "check" else
                "`drift-decider sync` records the gate's run once MLflow is back, but neither tags the candidate "
                "nor moves the alias: run `promote` again then")
        if isinstance(exc, InFlightError):
            then = "`drift-decider sync` lands it only if that check never does"
        raise _spooled(type(exc)(f"{exc}\nThe complete {kind} (metrics and decision "
                                 f"{payload.decision['action']!r}) was saved to {path}; {then}."), path) from exc


def spool_undecided(store: TrackingStore, ref: VersionRef, window: Window, payload: CheckPayload, *, spool_dir: Path,
                    attempt: str, policy_path: str, policy_sha256: str, exc: TrackingError) -> TrackingError:
    """Keep a check MLflow failed before it could be decided (reading the history): its measurement is
    spooled with the policy it is to be decided by; `sync` decides it on the history as it stands
    then, with that policy if its file is unchanged. Returns the error to raise."""
    path = _spool(store, spool_dir, ref, window, payload, 0, "check", {}, attempt, exc,
                  policy_path=policy_path, policy_sha256=policy_sha256)
    return _spooled(type(exc)(f"{exc}\nThe measured check was saved to {path}; `drift-decider sync` decides and "
                              f"records it once MLflow is back (with {policy_path}, if unchanged)."), path)


def _spooled(error: TrackingError, path: Path) -> TrackingError:
    error.spool_path = path
    return error


def _spool(store: TrackingStore, spool_dir: Path, ref: VersionRef, window: Window, payload: CheckPayload, step: int,
           kind: str, extra_tags: dict[str, str], attempt: str, exc: TrackingError, **policy: str) -> Path:
    return write_entry(spool_dir, SpoolEntry(
        model=ref.name, version=ref.version, model_id=ref.model_id, kind=kind,
        tracking_uri=spooled_uri(store.uri),
        window={**asdict(window), "window_end": window.window_end.isoformat()}, payload=asdict(payload),
        step=step, extra_tags=extra_tags, orphan_run_id=getattr(exc, "orphan_run_id", None), reason=str(exc),
        attempts=[attempt], **policy))


# Who records a window: the check holding its claim (registry.try_claim) on the version's LoggedModel,
# taken before it measures (claim_window). A holder that can no longer land (it failed before recording
# and released the claim, its attempt failed and was spooled, or its claim is over IN_FLIGHT_SECONDS old
# with no complete run) is replaced by claiming the next generation. The claim's note carries the
# window's end, so a check can see which earlier windows of its version are still being checked.
WAIT_SECONDS = 120.0        # how long a check waits for the holder of its window, or of an earlier one
_POLL_SECONDS = 0.5
T = TypeVar("T")


def _claim_prefix(kind: str, window_id: str) -> str:
    """Where the claims of one window of one kind live among the LoggedModel's params."""
    return claim_prefix(f"{kind}/{window_id}")


def _note(window: Window) -> str:
    return f"{_end_ms(window)} {window.window_id}"


def _end_ms(window: Window) -> int:
    """The window's end in whole milliseconds, as claims carry it (so ends compare alike on both sides)."""
    return round(window.window_end.timestamp() * 1000)


def claim_window(store: TrackingStore, ref: VersionRef, window: Window, attempt: str) -> Any | None:
    """Before a check measures: make ``attempt`` the one check that records ``window``. Returns the
    window's complete run instead when it was recorded before, or by a concurrent holder of the claim
    within WAIT_SECONDS; InFlightError when that holder is still at it (this check wrote nothing)."""
    with mlflow_errors(f"claiming window {window.window_id!r} of {ref.name} version {ref.version}"):
        experiment_id = ensure_experiment(store.client)
        try:
            return _take_window(store, experiment_id, ref, window, "check", attempt, set(), WAIT_SECONDS)
        except InFlightError as exc:
            raise InFlightError(f"{exc}; this check measured and wrote nothing: run it again once that one "
                                f"has landed") from exc


def release_window(store: TrackingStore, ref: VersionRef, window: Window, attempt: str) -> None:
    """Give up the window's claim after a failure before recording, so that neither a retry of the
    window nor a later window waits for this check. Best effort: the failure being reported matters
    more, and a claim left behind goes stale after IN_FLIGHT_SECONDS."""
    from mlflow.exceptions import MlflowException

    prefix = _claim_prefix("check", window.window_id)
    try:
        claim = read_claim(store.client, ref.model_id, prefix)
        if claim is not None and claim.token == attempt:
            try_claim(store.client, ref.model_id, prefix, claim.generation + 1, RELEASED, _note(window))
    except (MlflowException, OSError):
        pass


@contextlib.contextmanager
def holding_window(store: TrackingStore, ref: VersionRef, window: Window, attempt: str) -> Iterator[None]:
    """Hold the window's claim while the check measures and decides: a failure in the block releases
    it (release_window), except one that saved the check to the spool, whose attempt `sync` lands."""
    try:
        yield
    except BaseException as exc:
        if getattr(exc, "spool_path", None) is None:
            release_window(store, ref, window, attempt)
        raise


def decide_in_order(store: TrackingStore, ref: VersionRef, window: Window, decide: Callable[[list], T], *,
                    settle_until: float = 0.0) -> tuple[T, list]:
    """Decide ``window`` on the version's history as it will stand, not as a race leaves it: wait until
    every earlier window that a check has claimed is recorded (or released, or abandoned), call
    ``decide`` with the complete runs before ``window``, and decide again if another earlier window was
    claimed meanwhile. Returns the decision and those runs. InFlightError when an earlier window is
    still unrecorded after WAIT_SECONDS: nothing was written, the caller releases its claim.

    A check of an earlier window launched together with this one may not have claimed it yet: it
    takes about as long as this check took from launch to claim. So nothing is decided before
    ``settle_until`` (``time.monotonic()``): the caller's claim time plus that span again.
    """
    time.sleep(max(0.0, settle_until - time.monotonic()))
    deadline = time.monotonic() + WAIT_SECONDS
    with mlflow_errors(f"reading the history of {ref.name} version {ref.version}"):
        experiment_id = ensure_experiment(store.client)
        while True:
            claims = _earlier_claims(store, ref, window)
            runs = check_runs(store.client, experiment_id, ref)
            recorded = {run.data.tags[tags.WINDOW_ID] for run in runs}
            pending = [(window_id, claim) for window_id, claim in claims.values()
                       if window_id not in recorded and not claim.released and not _abandoned(claim)]
            if pending:
                if time.monotonic() >= deadline:
                    window_id, claim = min(pending, key=lambda item: item[1].note)
                    raise InFlightError(
                        f"window {window_id!r} of {ref.name} version {ref.version} ends before "
                        f"{window.window_id!r} and is still being checked (claimed at {claim.when()}, attempt "
                        f"{claim.token[:12]}); this check waited {WAIT_SECONDS:.0f} s and wrote nothing: run it "
                        f"again once that one has landed (if it failed, `drift-decider sync` where it ran lands it)")
                time.sleep(_POLL_SECONDS)
                continue
            prior = [run for run in runs if window_end_of(run) < window.window_end]
            decision = decide(prior)
            if _earlier_claims(store, ref, window).keys() <= claims.keys():
                return decision, prior


def _earlier_claims(store: TrackingStore, ref: VersionRef, window: Window) -> dict[tuple[str, int], tuple[str, Claim]]:
    """The check claims on the version whose note names a window ending before ``window``, keyed by
    (prefix, generation), with that window's id."""
    end = _end_ms(window)
    earlier = {}
    for prefix, claim in read_claims(store.client, ref.model_id).items():
        end_ms, _, window_id = claim.note.partition(" ")
        if window_id and window_id != window.window_id and float(end_ms) < end:
            earlier[(prefix, claim.generation)] = (window_id, claim)
    return earlier


def _abandoned(claim: Claim) -> bool:
    return time.time() - claim.claimed_at > IN_FLIGHT_SECONDS


def _take_window(store: TrackingStore, experiment_id: str, ref: VersionRef, window: Window, kind: str, token: str,
                 dead: set[str], wait: float) -> Any | None:
    """Claim the window for ``token``: None when it is ours to record, else its complete run (recorded
    before, or by the claim's holder within ``wait`` seconds). InFlightError when the holder is still
    writing then. Promotions are not claimed: each one is its own record."""
    if kind != "check":
        return None
    deadline = time.monotonic() + wait
    prefix = _claim_prefix(kind, window.window_id)
    while True:
        complete = check_runs(store.client, experiment_id, ref, kind=kind, window_id=window.window_id)
        if complete:
            return complete[-1]
        claim = read_claim(store.client, ref.model_id, prefix)
        if claim is not None and claim.token == token:
            return None
        if claim is None or claim.released or claim.token in dead or _abandoned(claim):
            if try_claim(store.client, ref.model_id, prefix, 0 if claim is None else claim.generation + 1, token,
                         _note(window)):
                return None
            continue                                   # another check claimed it first: see who
        if time.monotonic() >= deadline:
            raise InFlightError(f"window {window.window_id!r} of {ref.name} version {ref.version} is being "
                                f"recorded by another check (claimed at {claim.when()}, attempt {claim.token[:12]})")
        time.sleep(_POLL_SECONDS)


# Decides a spooled check that was measured but never decided, on the complete runs before its window.
DecideSpooled = Callable[[SpoolEntry, list], dict[str, Any]]
# Called with each check run sync records (the caller attaches the version's report to it).
OnLanded = Callable[["TrackingStore", VersionRef, str], None]


def sync_spool(spool_dir: Path, open_store: Callable[[str | None], TrackingStore], tracking_uri: str | None,
               decide: DecideSpooled, landed: OnLanded) -> list[dict[str, str]]:
    """Land every spooled check exactly once (or defer it, see _sync_entry); returns what happened to
    each entry.

    Each entry goes to the store it was spooled for (opened read-only by ``open_store``; credentials
    come from MLflow's environment variables), or to ``tracking_uri`` when one is given; an entry
    whose model version that store does not have is skipped and kept. One sync at a time per spool (a
    lock file), so two syncs never record the same window twice. Every write attempt named in the
    spool failed, so a run made by any of them is dead, whichever entry names it (two failed checks of
    one window leave two entries).
    An entry measured but never decided is decided by ``decide`` first; ``landed`` is called with each
    check run recorded.
    """
    if not spool_dir.is_dir():      # nothing was ever spooled here: nothing to land, and nothing to create
        return []
    with spool_lock(spool_dir):
        # window order: an undecided entry is decided after the earlier windows this sync lands
        entries, unreadable = read_entries(spool_dir)
        entries.sort(key=lambda item: parse_time(item[1].window["window_end"], str(item[0])))
        dead = {name for _, entry in entries for name in [*entry.attempts, entry.orphan_run_id] if name}
        outcomes = [{"entry": path.name, "status": "skipped", "run_id": "-", "decision": "-", "reason": reason}
                    for path, reason in unreadable]
        stores: dict[str | None, TrackingStore] = {}
        for path, entry in entries:
            skipped = {"entry": path.name, "status": "skipped", "run_id": "-", "decision": _action(entry)}
            uri = tracking_uri or entry.tracking_uri or None
            try:          # a store that is gone or down holds back its own entries, not the others
                if uri not in stores:        # one connection check per store, not per entry
                    stores[uri] = open_store(uri)
                store = stores[uri]
                missing = _lacks_version(store, entry)
            except InputError as exc:
                outcomes.append({**skipped, "reason": str(exc)})
                continue
            except TrackingError as exc:
                outcomes.append({**skipped, "status": "unreachable", "reason": str(exc)})
                continue
            outcomes.append({**skipped, "reason": missing} if missing
                            else _sync_entry(store, path, entry, dead, decide, landed))
        return outcomes


def spooled_uri(uri: str) -> str:
    """The store a spool entry is for, as it can be written down: without credentials, and a sqlite
    path made absolute, so `sync` from another folder finds the same file."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////") and ":memory:" not in uri:
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    return redact(uri)


def _lacks_version(store: TrackingStore, entry: SpoolEntry) -> str | None:
    """Why this store cannot take the entry (it lacks the entry's LoggedModel), or None."""
    from mlflow.exceptions import MlflowException

    try:
        with mlflow_errors(f"looking up {entry.model} version {entry.version}"):
            store.client.get_logged_model(entry.model_id)
        return None
    except TrackingError as exc:
        if not isinstance(exc.__cause__, MlflowException) or exc.__cause__.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    return (f"this store ({redact(store.uri)}) has no model {entry.model!r} version {entry.version} "
            f"(LoggedModel {entry.model_id}); the entry was spooled for {entry.tracking_uri or 'an unrecorded store'}: "
            f"run sync with --tracking-uri for that store")


# An incomplete run this old belongs to a check that died, whoever started it: no check writes for an hour.
IN_FLIGHT_SECONDS = 3600


def _action(entry: SpoolEntry) -> str:
    decision = entry.payload["decision"]
    return decision["action"] if decision else "undecided"


def _sync_entry(store: TrackingStore, path: Path, entry: SpoolEntry, dead: set[str],
                decide: DecideSpooled, landed: OnLanded) -> dict[str, str]:
    """Land one spooled check unless its window is recorded already, or another check is writing it now.

    An incomplete run of the window is a failed write when ``dead`` (attempt ids and run ids the
    spool names) holds its attempt id (set when the run was created, so also on a run whose id the
    check never learnt) or its run id; then, and when it is over an hour old (its start time by the
    writer's clock against this host's: clocks are assumed to agree within the hour), it is
    deleted. Any other is a concurrent check still writing: it is left alone and the entry waits
    for the next sync ("deferred").
    """
    ref = VersionRef(name=entry.model, version=entry.version, model_id=entry.model_id, tags={})
    window = Window(**{**entry.window, "window_end": parse_time(entry.window["window_end"], str(path))})
    with mlflow_errors(f"syncing {path.name}"):
        experiment_id = ensure_experiment(store.client)
        runs = search_checks(store.client, experiment_id, model=ref.name, version=ref.version, kind=entry.kind,
                             window_id=window.window_id, complete_only=False)
        complete, in_flight = [], []
        for run in runs:
            if is_complete(run):
                complete.append(run)
                if run.info.status == "RUNNING" and _dead(run, dead):    # the reply to its completion was lost
                    store.client.set_terminated(run.info.run_id, "FINISHED")
            elif _dead(run, dead):
                if discard_orphan(store.client, run.info.run_id):     # it completed since the search
                    complete.append(run)
            else:
                in_flight.append(run)
        if complete:
            _publish(store, experiment_id, ref, entry.kind)
    action = _action(entry)        # what the entry says; a recorded undecided entry says what was decided
    deferred = {"entry": path.name, "status": "deferred", "decision": action,
                "reason": "another check is writing this window now; the entry stays for the next sync"}
    if complete:
        run_id, status = complete[-1].info.run_id, "already recorded"
    elif in_flight:
        return {**deferred, "run_id": in_flight[-1].info.run_id}
    else:
        attempt = uuid.uuid4().hex
        try:
            with mlflow_errors(f"syncing {path.name}"):
                winner = _take_window(store, experiment_id, ref, window, entry.kind, attempt, dead, 0.0)
        except InFlightError:            # claimed by a live check that has not created its run yet
            return {**deferred, "run_id": "-"}
        if winner is not None:           # its holder landed it since the search
            with mlflow_errors(f"syncing {path.name}"):
                _publish(store, experiment_id, ref, entry.kind)
            run_id, status = winner.info.run_id, "already recorded"
        else:
            payload, step = CheckPayload(**entry.payload), entry.step
            if payload.decision is None:     # MLflow failed before the check could decide
                try:
                    decision, prior = decide_in_order(store, ref, window, lambda prior: decide(entry, prior))
                except (InputError, PolicyError, InFlightError) as exc:   # the policy changed or broke; an
                    release_window(store, ref, window, attempt)              # earlier window in flight
                    return {**deferred, "run_id": "-", "status": "deferred" if isinstance(exc, InFlightError)
                            else "skipped", "reason": str(exc)}
                except BaseException:        # MLflow failed again, or an interrupt: the window is not ours
                    release_window(store, ref, window, attempt)
                    raise
                payload, step = replace(payload, decision=decision), len(prior) + 1
            try:
                run_id = _record_and_publish(store, experiment_id, ref, window, payload,
                                             step, entry.kind, entry.extra_tags, attempt)
            except RecordingFailed as exc:   # keep the entry, now naming this attempt too
                kept = write_entry(path.parent, replace(entry, orphan_run_id=exc.orphan_run_id or
                                                        entry.orphan_run_id, reason=str(exc),
                                                        attempts=[*entry.attempts, attempt]))
                if kept != path:             # an entry from before attempt ids gets its new name
                    path.unlink()
                raise
            status, action = "recorded", payload.decision["action"]
            if entry.kind == "check":
                landed(store, ref, run_id)
    path.unlink()
    return {"entry": path.name, "status": status, "run_id": run_id, "decision": action}


def _dead(run: Run, dead: set[str]) -> bool:
    """An incomplete run sync may delete: made by a failed write attempt, or abandoned."""
    if run.data.tags.get(tags.ATTEMPT) in dead or run.info.run_id in dead:
        return True
    return time.time() * 1000 - run.info.start_time > IN_FLIGHT_SECONDS * 1000


def _record_and_publish(store: TrackingStore, experiment_id: str, ref: VersionRef, window: Window,
                        payload: CheckPayload, step: int, kind: str, extra_tags: dict[str, str], attempt: str) -> str:
    run_id = record_check(store.client, experiment_id, ref, window, payload, step, attempt=attempt, kind=kind,
                          extra_tags=extra_tags)
    with mlflow_errors(f"publishing the latest decision of {ref.name} version {ref.version}"):
        _publish(store, experiment_id, ref, kind)
    return run_id


def _publish(store: TrackingStore, experiment_id: str, ref: VersionRef, kind: str) -> None:
    """A recorded check moves the version's latest-decision tags; a promotion run does not."""
    if kind == "check":
        publish_latest(store.client, ref, lambda: check_runs(store.client, experiment_id, ref, newest=True))
