"""Linked records (issue 17, point 1): the LoggedModels drift-decider creates are READY and registered,
check runs are linked to the version's LoggedModel the way MLflow's own evaluations are (a model input
of the run, metrics carrying the model id), run names say model, version and window, and the window's
end and index are params the UI's charts can plot against."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from mlflow import MlflowClient

from drift_decider.tracking import tags
from drift_decider.tracking.registry import EXPERIMENT, resolve_version
from support import check_args, movielens_items, register_with_reference, run_cli, write_items

REGISTERED = "mlflow.modelVersions"       # the LoggedModel tag MLflow's UI reads to show "registered"


def _registered_versions(client: MlflowClient, model_id: str) -> list[tuple[str, str]]:
    """(name, version) of each registered version the model's tag names (a server writes versions as numbers)."""
    return [(entry["name"], str(entry["version"])) for entry in
            json.loads(client.get_logged_model(model_id).tags.get(REGISTERED, "[]"))]


def test_register_makes_a_ready_registered_logged_model(sqlite_uri: str) -> None:
    run_cli("register", "--model", "recs", "--tracking-uri", sqlite_uri)
    run_cli("register", "--model", "recs", "--tracking-uri", sqlite_uri)
    client = MlflowClient(sqlite_uri, sqlite_uri)
    for version in ("1", "2"):
        model_id = resolve_version(client, "recs", version).model_id
        assert str(client.get_logged_model(model_id).status) == "READY"
        assert _registered_versions(client, model_id) == [("recs", version)]


@pytest.mark.server
def test_register_through_a_server_is_registered_once(mlflow_server) -> None:
    version = run_cli("register", "--model", "recs-server", "--tracking-uri", mlflow_server.uri).stdout
    client = MlflowClient(mlflow_server.uri, mlflow_server.uri)
    latest = max(client.search_model_versions("name = 'recs-server'"), key=lambda mv: int(mv.version))
    assert f"version {latest.version};" in version
    model_id = resolve_version(client, "recs-server", latest.version).model_id
    assert _registered_versions(client, model_id) == [("recs-server", latest.version)]


def _runs_version(client: MlflowClient, name: str) -> str:
    """A version registered from a run's artifacts (runs:/), as flavour-logged models are: no LoggedModel."""
    run = client.create_run(client.create_experiment(f"training-{name}"))
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    return str(client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                           await_creation_for=0).version)


def test_reference_set_gives_a_runs_version_a_ready_registered_logged_model(tmp_path: Path, sqlite_uri: str) -> None:
    client = MlflowClient(sqlite_uri, sqlite_uri)
    version = _runs_version(client, "recs")
    ids, vectors = movielens_items()
    run_cli("reference", "set", "--model", "recs", "--version", version, "--embeddings",
            write_items(tmp_path / "ref.npz", ids, vectors), "--tracking-uri", sqlite_uri)
    model_id = client.get_model_version("recs", version).tags[tags.LOGGED_MODEL_ID]
    assert str(client.get_logged_model(model_id).status) == "READY"
    assert _registered_versions(client, model_id) == [("recs", version)]


def test_reference_set_repairs_a_logged_model_attached_before(tmp_path: Path, sqlite_uri: str) -> None:
    """Stores written before: the attached LoggedModel was left PENDING and unregistered."""
    client = MlflowClient(sqlite_uri, sqlite_uri)
    version = _runs_version(client, "recs")
    experiment_id = client.create_experiment(EXPERIMENT)
    old = client.create_logged_model(experiment_id=experiment_id, name=f"recs-v{version}", model_type="external")
    client.set_model_version_tag("recs", version, tags.LOGGED_MODEL_ID, old.model_id)
    ids, vectors = movielens_items()
    run_cli("reference", "set", "--model", "recs", "--version", version, "--embeddings",
            write_items(tmp_path / "ref.npz", ids, vectors), "--tracking-uri", sqlite_uri)
    assert str(client.get_logged_model(old.model_id).status) == "READY"
    assert _registered_versions(client, old.model_id) == [("recs", version)]


def test_check_runs_are_named_linked_and_placed_in_time(tmp_path: Path, sqlite_uri: str) -> None:
    version, reference = register_with_reference(sqlite_uri, tmp_path)
    client = MlflowClient(sqlite_uri, sqlite_uri)
    model_id = resolve_version(client, "recsys", version).model_id
    ends = ["2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z"]
    outcomes = [json.loads(run_cli(*check_args(sqlite_uri, version, reference, f"2026-w{10 + n}",
                                               window_end=end)).stdout)
                for n, end in enumerate(ends)]
    for index, (outcome, end) in enumerate(zip(outcomes, ends), start=1):
        run = client.get_run(outcome["run_id"])
        assert run.info.run_name == f"recsys v{version} · 2026-w{9 + index}"
        expected_ms = int(datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp() * 1000)
        assert run.data.params[tags.WINDOW_END_MS] == str(expected_ms)
        assert run.data.params[tags.WINDOW_INDEX] == str(index)
        assert [model.model_id for model in run.inputs.model_inputs] == [model_id]
        # what the run page asks MLflow for its "Logged models": its model inputs and outputs, in its experiment
        found = client.search_logged_models([run.info.experiment_id], f"attributes.model_id IN ('{model_id}')")
        assert [model.model_id for model in found] == [model_id]
        assert all(metric.timestamp == expected_ms for metric in client.get_metric_history(run.info.run_id, "mmd2"))
    # what the model page lists as its runs: the runs its metrics came from
    runs_of_model = {metric.run_id for metric in client.get_logged_model(model_id).metrics}
    assert runs_of_model == {outcome["run_id"] for outcome in outcomes}
