"""Find the registered model version a check is about, and the LoggedModel its metrics belong to."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Iterator

from drift_decider.errors import InputError, TrackingError
from drift_decider.tracking import tags
from drift_decider.tracking.connection import mlflow_errors

EXPERIMENT = "drift-decider"
_MODEL_ID_IN_SOURCE = re.compile(r"^models:/(m-[0-9a-f]+)(?:/|$)")


@dataclass(frozen=True)
class VersionRef:
    """A registered model version and the LoggedModel that carries its metrics and reference."""

    name: str
    version: str
    model_id: str | None      # None only for a runs:/ version that was never given a reference
    tags: dict[str, str]


def resolve_version(client, name: str, version: str | None = None, alias: str | None = None, *,
                    attach: bool = False) -> VersionRef:
    """Look up ``name`` at ``version`` or ``alias``, read-only unless ``attach``.

    ``attach`` (used by `reference set`) gives a version without a LoggedModel one, once.
    """
    from mlflow.exceptions import MlflowException

    if (version is None) == (alias is None):
        raise InputError("give exactly one of --version or --alias")
    try:
        mv = (client.get_model_version(name, version) if version is not None
              else client.get_model_version_by_alias(name, alias))
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            what = f"version {version}" if version is not None else f"alias {alias!r}"
            raise InputError(f"registered model {name!r} has no {what}") from exc
        raise TrackingError(f"MLflow failed while looking up model {name!r}: {exc}") from exc
    return VersionRef(name=mv.name, version=str(mv.version), model_id=_logged_model_id(client, mv, attach),
                      tags=dict(mv.tags or {}))


def _logged_model_id(client, mv, attach: bool) -> str | None:
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
    if existing or not attach:
        return existing
    with mlflow_errors(f"attaching a LoggedModel to {mv.name} version {mv.version}"):
        experiment_id = ensure_experiment(client)
        logged = client.create_logged_model(
            experiment_id=experiment_id, name=f"{mv.name}-v{mv.version}", source_run_id=mv.run_id,
            tags={tags.MODEL: mv.name, tags.VERSION: str(mv.version)}, model_type="external")
        client.set_model_version_tag(mv.name, str(mv.version), tags.LOGGED_MODEL_ID, logged.model_id)
    return logged.model_id


def alias_holder(client, name: str, alias: str) -> str | None:
    """The version now holding ``alias``, or None when the alias is unset."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise TrackingError(f"MLflow failed while looking up alias {alias!r} of {name!r}: {exc}") from exc


def find_experiment(client, name: str = EXPERIMENT) -> str | None:
    """The id of the experiment checks are logged to, or None before the first check."""
    with mlflow_errors(f"looking up experiment {name!r}"):
        experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment is not None else None


def ensure_experiment(client, name: str = EXPERIMENT) -> str:
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


def register_external_model(client, tracking_uri: str, name: str, *, experiment_id: str,
                            tags: dict[str, str] | None = None) -> VersionRef:
    """Register a new version of a model that lives outside MLflow (e.g. an embedding service).

    Creates an external LoggedModel (so the version has a model page for its metrics) and a model
    version pointing at it. Used by the demo and by teams whose recommender is not an MLflow flavour.
    """
    from mlflow.exceptions import MlflowException

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
