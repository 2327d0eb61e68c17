"""The study's MLflow store: a sqlite database and artifact folders inside the work directory.

Experiments are created here, with their artifact location in the work directory, before
drift-decider writes to them; otherwise MLflow would put artifacts under the current folder.
"""

from __future__ import annotations

from pathlib import Path

from drift_decider.tracking.registry import EXPERIMENT as CHECK_EXPERIMENT  # where api.check logs its runs

STUDY_EXPERIMENT = "movielens-study"


def tracking_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir.resolve() / 'mlflow.db'}"


def prepare(workdir: Path):
    """Create both experiments with artifacts in ``workdir``; return (client, study experiment id)."""
    from mlflow import MlflowClient

    uri = tracking_uri(workdir)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    ids = {}
    for name in (STUDY_EXPERIMENT, CHECK_EXPERIMENT):
        existing = client.get_experiment_by_name(name)
        ids[name] = existing.experiment_id if existing else client.create_experiment(
            name, artifact_location=(workdir.resolve() / "artifacts" / name).as_uri())
    return client, ids[STUDY_EXPERIMENT]


def register_version(client, experiment_id: str, model_name: str, *, artifacts: Path,
                     params: dict[str, str]) -> str:
    """Register a trained model (its files in ``artifacts``) as a new version of ``model_name``.

    The files (item factors, serving index) travel with the version's LoggedModel, so a version
    can be served and checked from MLflow alone.
    """
    import mlflow

    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    logged = mlflow.create_external_model(name=model_name, experiment_id=experiment_id, params=params,
                                          model_type="matrix-factorisation")
    client.log_model_artifacts(logged.model_id, str(artifacts))
    if not client.search_registered_models(filter_string=f"name = '{model_name}'"):
        client.create_registered_model(model_name)
    version = client.create_model_version(model_name, source=f"models:/{logged.model_id}",
                                          model_id=logged.model_id)
    return str(version.version)
