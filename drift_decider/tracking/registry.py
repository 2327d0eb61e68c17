"""Find the registered model version a check is about, and the LoggedModel its metrics belong to."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator

from drift_decider.errors import InFlightError, InputError, TrackingError, redact
from drift_decider.tracking import tags
from drift_decider.tracking.connection import mlflow_errors

if TYPE_CHECKING:      # MLflow's types, for annotations only (mlflow loads when a call needs it)
    from mlflow import MlflowClient
    from mlflow.entities import ModelVersion

EXPERIMENT = "drift-decider"
_MODEL_ID_IN_SOURCE = re.compile(r"^models:/(m-[0-9a-f]+)(?:/|$)")


@dataclass(frozen=True)
class VersionRef:
    """A registered model version and the LoggedModel that carries its metrics and reference."""

    name: str
    version: str
    model_id: str | None      # None only for a runs:/ version that was never given a reference
    tags: dict[str, str]


def resolve_version(client: MlflowClient, name: str, version: str | None = None, alias: str | None = None, *,
                    attach: bool = False) -> VersionRef:
    """Look up ``name`` at ``version`` or ``alias``, read-only unless ``attach``.

    ``attach`` (used by `reference set`) gives a version without a LoggedModel one, once.
    """
    from mlflow.exceptions import MlflowException

    require_name(name)
    if (version is None) == (alias is None):
        raise InputError("give exactly one of --version or --alias")
    try:
        mv = (client.get_model_version(name, version) if version is not None
              else client.get_model_version_by_alias(name, alias))
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise _missing_version(client, name, version, alias) from exc
        raise TrackingError(f"MLflow failed while looking up model {name!r}: {exc}") from exc
    return VersionRef(name=mv.name, version=str(mv.version), model_id=_logged_model_id(client, mv, attach),
                      tags=dict(mv.tags or {}))


def _missing_version(client: MlflowClient, name: str, version: str | None, alias: str | None) -> InputError:
    """What to say when a version or alias is missing: the versions there are, or how to make one."""
    register = f"`drift-decider register --model {name}` registers a new version"
    try:
        require_model(client, name)
    except InputError as exc:
        return InputError(f"{exc}; {register}")
    versions = sorted((mv.version for mv in client.search_model_versions(f"name = {quoted(name)}", max_results=200)),
                      key=int)
    what = f"version {version}" if version is not None else f"alias {alias!r}"
    have = f"it has version{'s' if len(versions) > 1 else ''} {', '.join(map(str, versions))}" if versions else \
        "it has no version"
    if alias is not None and versions:     # the versions are there: the alias is what is missing
        return InputError(f"registered model {name!r} has no alias {alias!r} ({have}); give --version, or set the "
                          f"alias: `drift-decider promote --model {name} --candidate N --alias {alias} --current "
                          f"TODAY.npz --policy policies/promotion-gate.yaml` gates a version and moves it")
    return InputError(f"registered model {name!r} has no {what} ({have}); {register}")


def quoted(value: str) -> str:
    """``value`` as a string literal of an MLflow search filter. MLflow's filter parser takes no
    backslash escapes: a name holding ``'`` is written in double quotes (one holding both kinds of
    quote cannot be written, and matches nothing)."""
    return f'"{value}"' if "'" in value and '"' not in value else f"'{value}'"


def _logged_model_id(client: MlflowClient, mv: ModelVersion, attach: bool) -> str | None:
    """The version's LoggedModel id: ``model_id``, else parsed from ``source``, else the one we attached
    earlier (tagged on the version), else a new one when ``attach`` (None otherwise).

    Versions registered from a run's artifacts (``runs:/…``) have no LoggedModel; we create an
    external one for them once and remember it in a version tag, so metrics still land on a model.
    """
    if getattr(mv, "model_id", None):
        return mv.model_id
    match = _MODEL_ID_IN_SOURCE.match(mv.source or "")
    if match:
        return match.group(1)
    existing = (mv.tags or {}).get(tags.LOGGED_MODEL_ID)
    if not attach:
        return existing
    with mlflow_errors(f"attaching a LoggedModel to {mv.name} version {mv.version}"):
        if not existing:
            existing = client.create_logged_model(
                experiment_id=ensure_experiment(client), name=f"{mv.name}-v{mv.version}", source_run_id=mv.run_id,
                tags={tags.MODEL: mv.name, tags.VERSION: str(mv.version)}, model_type="external").model_id
            client.set_model_version_tag(mv.name, str(mv.version), tags.LOGGED_MODEL_ID, existing)
        finish_logged_model(client, existing, mv.name, str(mv.version))   # also one attached before it was
    return existing


# The LoggedModel tag MLflow's UI reads to show a model as registered, and to which versions. A tracking
# server sets it when a version is created with a model id; a client writing to sqlite does not.
REGISTERED_VERSIONS_TAG = "mlflow.modelVersions"


def finish_logged_model(client: MlflowClient, model_id: str, name: str, version: str) -> None:
    """Make a LoggedModel drift-decider created READY (MLflow shows a PENDING one as still being logged)
    and registered as ``name`` ``version``, as MLflow itself records it; idempotent."""
    logged = client.get_logged_model(model_id)
    if str(logged.status) == "PENDING":
        client.finalize_logged_model(model_id, "READY")
    try:
        registered = json.loads(logged.tags.get(REGISTERED_VERSIONS_TAG) or "[]")
    except ValueError:
        return                     # not MLflow's format: someone else's value, left as it is
    if isinstance(registered, list) and not any(isinstance(entry, dict) and entry.get("name") == name
                                                and str(entry.get("version")) == version for entry in registered):
        entry = {"name": name, "version": int(version)}        # as the server writes it (a version is a number)
        client.set_logged_model_tags(model_id, {REGISTERED_VERSIONS_TAG: json.dumps([*registered, entry])})


def alias_problem(alias: str) -> str | None:
    """Why MLflow would refuse ``alias`` (its own rules), or None: checked before any work is recorded."""
    if not re.fullmatch(r"[\w-]{1,200}", alias):      # MLflow allows 255; our per-alias tag keys, 250 in all
        return f"alias {alias[:210]!r} may hold only letters, digits, '_' and '-' (1 to 200 of them)"
    if alias.lower() == "latest" or re.fullmatch(r"[vV][0-9]+", alias):
        return f"alias {alias!r} is reserved by MLflow: 'latest', and v<number> name versions"
    return None


def alias_holder(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version now holding ``alias``, or None when the alias is unset."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise TrackingError(f"MLflow failed while looking up alias {alias!r} of {name!r}: {exc}") from exc


def find_experiment(client: MlflowClient, name: str = EXPERIMENT) -> str | None:
    """The id of the experiment checks are logged to, or None before the first check."""
    with mlflow_errors(f"looking up experiment {name!r}"):
        experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment is not None else None


def ensure_experiment(client: MlflowClient, name: str = EXPERIMENT) -> str:
    """The id of the experiment checks are logged to, created on first use."""
    from mlflow.exceptions import MlflowException

    existing = find_experiment(client, name)
    if existing is not None:
        return existing
    try:
        return client.create_experiment(name)
    except MlflowException:  # another process created it in between
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


LOGGED_MODEL_NAME_FORBIDDEN = "/:.%\"'"     # MLflow's rule for LoggedModel names (registered models allow more)


def register_external_model(client: MlflowClient, tracking_uri: str, name: str, *, experiment_id: str,
                            tags: dict[str, str] | None = None) -> VersionRef:
    """Register a new version of a model that lives outside MLflow (e.g. an embedding service).

    Creates an external LoggedModel (so the version has a model page for its metrics) and a model
    version pointing at it. Used by the demo and by teams whose recommender is not an MLflow flavour.
    """
    from mlflow.exceptions import MlflowException

    require_name(name)
    if forbidden := sorted(set(name) & set(LOGGED_MODEL_NAME_FORBIDDEN)):
        raise InputError(f"model name {name!r} holds {' '.join(forbidden)}, which MLflow refuses in the name "
                         f"of the model page a version is registered with (none of {LOGGED_MODEL_NAME_FORBIDDEN})")
    with mlflow_errors(f"registering a version of {name!r}"):
        logged = client.create_logged_model(experiment_id=experiment_id, name=name, model_type="external",
                                            tags=tags)
        client.finalize_logged_model(logged.model_id, "READY")
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        with _global_tracking_uri(tracking_uri):  # MLflow resolves a models:/ source via the global URI
            mv = client.create_model_version(name, source=f"models:/{logged.model_id}", model_id=logged.model_id,
                                             tags=tags, await_creation_for=0)
        finish_logged_model(client, logged.model_id, name, str(mv.version))
    return VersionRef(name=name, version=str(mv.version), model_id=logged.model_id, tags=dict(mv.tags or {}))


@contextlib.contextmanager
def _global_tracking_uri(uri: str) -> Iterator[None]:
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


# Claims: MLflow has no transactions and no compare-and-set, but a LoggedModel param is a write-once
# row behind a primary key, so exactly one insert of a key succeeds (sqlite and server alike). A claim
# is the param ``<prefix><generation>`` = ``<token> <time>[ <note>]``; a stale holder is replaced by
# claiming the next generation (the caller decides when a holder is stale), and a holder gives its
# claim up by claiming the next generation as RELEASED.
CLAIM_PREFIX = tags.PREFIX + "claim."
RELEASED = "released"


@dataclass(frozen=True)
class Claim:
    generation: int
    token: str                  # who claimed (a write attempt id, or a promotion's run id), or RELEASED
    claimed_at: float           # seconds since the epoch, by the claimer's clock
    note: str = ""              # what the claimer says of its subject (a check: its window's end and id)

    @property
    def released(self) -> bool:
        return self.token == RELEASED

    def when(self) -> str:
        """The claim time, ISO-8601 UTC, for messages."""
        return datetime.fromtimestamp(self.claimed_at, timezone.utc).isoformat(timespec="seconds")


def claim_prefix(subject: str) -> str:
    """Param keys allow few characters and 250 of them, so what is claimed is named by a digest."""
    return f"{CLAIM_PREFIX}{hashlib.sha256(subject.encode()).hexdigest()[:40]}."


def read_claims(client: MlflowClient, model_id: str) -> dict[str, Claim]:
    """The latest generation's claim of every subject claimed on the LoggedModel, by claim prefix."""
    latest: dict[str, Claim] = {}
    for key, value in (client.get_logged_model(model_id).params or {}).items():
        if key.startswith(CLAIM_PREFIX):
            prefix, _, generation = key.rpartition(".")
            token, claimed_at, note = (value.split(" ", 2) + ["", ""])[:3]
            claim = Claim(int(generation), token, float(claimed_at or 0), note)
            if prefix + "." not in latest or claim.generation > latest[prefix + "."].generation:
                latest[prefix + "."] = claim
    return latest


def read_claim(client: MlflowClient, model_id: str, prefix: str) -> Claim | None:
    """The latest generation's claim under ``prefix`` on the LoggedModel, or None before any."""
    return read_claims(client, model_id).get(prefix)


def try_claim(client: MlflowClient, model_id: str, prefix: str, generation: int, token: str, note: str = "") -> bool:
    """Insert the claim of ``generation`` for ``token``; False when another one inserted it first."""
    from mlflow.exceptions import MlflowException

    try:
        client.log_model_params(model_id, {f"{prefix}{generation}": f"{token} {time.time():.3f} {note}".rstrip()})
        return True
    except MlflowException:
        claim = read_claim(client, model_id, prefix)
        if claim is not None and claim.generation >= generation:
            return False
        raise


@dataclass(frozen=True)
class AliasState:
    """An alias as a promotion read it before its gate: the holder, and how many claims to move the
    alias away from the holder existed then (the generation this promotion's claim must take)."""

    holder: str | None
    claims: int = 0
    model_id: str | None = None       # the holder's LoggedModel, where those claims live


def alias_state(client: MlflowClient, name: str, alias: str) -> AliasState:
    holder = alias_holder(client, name, alias)
    model_id = None if holder is None else resolve_version(client, name, version=holder).model_id
    if model_id is None:
        return AliasState(holder)
    latest = read_claim(client, model_id, claim_prefix(f"alias/{alias}"))
    return AliasState(holder, 0 if latest is None else latest.generation + 1, model_id)


def move_alias(client: MlflowClient, name: str, alias: str, seen: AliasState, candidate: str, token: str) -> None:
    """Move ``alias`` from the holder ``seen`` before the gate to ``candidate``, compare-and-set in effect:
    InFlightError, with nothing moved, when another promotion moved it since or is moving it.

    The move away from the holder is claimed on the holder's LoggedModel at the generation seen, so
    of the promotions that read one state, one claim succeeds, and one that read before another's
    claim fails. The holder is read again after the claim (a mover that claimed before this one read
    the state has moved it by then, unless it stalled in between; so may the MLflow UI), and the
    alias after the move. An unset alias, or a holder without a LoggedModel, has nowhere to claim:
    then the holder is only read again, before and after the move. Found on ``candidate`` already, the
    alias was moved by another pass for the same candidate: what this one wanted, not a failure.
    """
    if seen.model_id is not None and not try_claim(client, seen.model_id, claim_prefix(f"alias/{alias}"),
                                                   seen.claims, token):
        if alias_holder(client, name, alias) == candidate:   # another pass for this candidate moved it
            return
        raise InFlightError(f"another promotion moved alias {alias!r} of {name!r} away from version {seen.holder} "
                            f"(or is moving it) since this one read it; the alias was not moved")
    now = alias_holder(client, name, alias)
    if now == candidate:            # another pass for the same candidate moved it: what this one wanted
        return
    if now != seen.holder:
        raise InFlightError(f"alias {alias!r} of {name!r} moved to version {now} while the gate was evaluated; "
                            f"the alias was not moved")
    client.set_registered_model_alias(name, alias, candidate)
    now = alias_holder(client, name, alias)
    if now != candidate:
        raise InFlightError(f"alias {alias!r} of {name!r} was moved on to version {now} by another promotion "
                            f"right after this one moved it")


def require_name(name: str) -> None:
    """An empty model name is a missing argument (MLflow would call it a failed request)."""
    if not name.strip():
        raise InputError("--model is empty: give the registered model's name")


def require_model(client: MlflowClient, name: str) -> None:
    """A read of a model that is not registered is a typo or the wrong store: name the nearest models."""
    import difflib

    from mlflow.exceptions import MlflowException

    require_name(name)
    try:
        client.get_registered_model(name)
        return
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
            raise
    names = [m.name for m in client.search_registered_models(max_results=1000)]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else (
        f"; it has {', '.join(map(repr, sorted(names)[:5]))}" if names else "; it has no registered model")
    raise InputError(f"no registered model {name!r} in the store at {redact(client.tracking_uri)}{hint}")
