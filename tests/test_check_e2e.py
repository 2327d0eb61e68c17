"""End to end: reference set → check → MLflow state, over sqlite and over a real HTTP server."""

from __future__ import annotations

import json

import numpy as np
import pytest
from drift_decider.tracking.connection import connect

from drift_decider.tracking import tags
from support import POLICY, check_args, movielens_items, register_with_reference, run_cli, write_items


def _windows(tmp_path):
    ids, vectors = movielens_items()
    rng = np.random.default_rng(7)
    quiet = write_items(tmp_path / "quiet.npz", ids, vectors + rng.normal(scale=0.005, size=vectors.shape))
    scaled = write_items(tmp_path / "scaled.npz", ids, vectors * 1.6)
    return quiet, scaled


def _check(uri, version, current, window, end, *extra, expect=0):
    return run_cli(*check_args(uri, version, current, window, window_end=end), *extra, expect=expect)


@pytest.mark.parametrize("backend", ["sqlite", "http"])
def test_check_logs_metrics_on_the_version_and_tags_the_decision(backend, tmp_path, sqlite_uri, request):
    uri = request.getfixturevalue("mlflow_server").uri if backend == "http" else sqlite_uri
    version, _ = register_with_reference(uri, tmp_path, name=f"recsys-{backend}")
    quiet, scaled = _windows(tmp_path)
    outcomes = []
    for i, (current, day) in enumerate([(quiet, "01"), (scaled, "02"), (scaled, "03")]):
        result = run_cli("check", "--model", f"recsys-{backend}", "--version", version, "--current", current,
                         "--policy", POLICY, "--window-id", f"day-{day}", "--window-end", f"2026-03-{day}T00:00:00Z",
                         "--tracking-uri", uri, "--json")
        outcomes.append(json.loads(result.stdout))

    client = connect(uri)
    mv = client.get_model_version(f"recsys-{backend}", version)
    runs = client.search_runs([client.get_experiment_by_name("drift-decider").experiment_id],
                              f"tags.`{tags.MODEL}` = 'recsys-{backend}'", order_by=["attributes.start_time"])
    assert len(runs) == 3
    assert {r.data.tags[tags.WINDOW_ID] for r in runs} == {"day-01", "day-02", "day-03"}
    latest = outcomes[-1]
    assert mv.tags[tags.DECISION] == latest["action"]
    assert mv.tags[tags.RULE] == (latest["rule_id"] or "")
    assert mv.tags[tags.WINDOW_ID] == "day-03"
    assert mv.tags[tags.RUN_ID] == latest["run_id"]
    assert mv.tags[tags.DECISION_ID] == latest["decision_id"]
    # metrics are tied to the version's LoggedModel, with the window as the dataset
    assert mv.source.startswith("models:/m-")   # open-source MLflow: the LoggedModel id lives in `source`
    logged = client.get_logged_model(mv.source.split("/")[1])
    keys = {m.key for m in logged.metrics}
    assert {"mmd2", "norm_ratio", "domain_classifier.auc"} <= keys
    norm = [m for m in logged.metrics if m.key == "norm_ratio" and m.run_id == latest["run_id"]]
    assert norm and norm[0].dataset_name == "scaled" and norm[0].step == 3
    assert norm[0].value == pytest.approx(1.6, rel=1e-3)
    # the decision record artifact reconstructs the decision
    record = json.loads(run_cli("audit", "--decision-id", latest["decision_id"], "--tracking-uri", uri,
                                "--json").output)
    assert record["decision"]["action"] == latest["action"]
    assert record["decision"]["policy"]["name"] == "recommender-default"
    assert record["evidence"]["values"]["norm_ratio"] == pytest.approx(1.6, rel=1e-3)


def test_same_window_is_never_decided_twice(tmp_path, sqlite_uri):
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    quiet, _ = _windows(tmp_path)
    first = json.loads(_check(sqlite_uri, version, quiet, "w1", "2026-03-01T00:00:00Z").stdout)
    again = json.loads(_check(sqlite_uri, version, quiet, "w1", "2026-03-01T00:00:00Z").stdout)
    assert again["already_recorded"] and again["run_id"] == first["run_id"]
    assert again["decision_id"] == first["decision_id"]
    client = connect(sqlite_uri)
    assert len(client.search_runs([client.get_experiment_by_name("drift-decider").experiment_id])) == 1


def test_dry_run_writes_nothing(tmp_path, sqlite_uri):
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    quiet, _ = _windows(tmp_path)
    out = json.loads(_check(sqlite_uri, version, quiet, "w1", "2026-03-01T00:00:00Z", "--dry-run").stdout)
    assert out["run_id"] is None
    client = connect(sqlite_uri)
    experiment = client.get_experiment_by_name("drift-decider")
    assert client.search_runs([experiment.experiment_id]) == []
    assert tags.DECISION not in client.get_model_version("recsys", version).tags


def _snapshot(uri):
    client = connect(uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments]) if experiments else []
    versions = client.search_model_versions("name = 'recsys'")
    return len(runs), [dict(v.tags) for v in versions]


@pytest.mark.parametrize("problem", ["nan", "dimension", "empty", "missing"])
def test_invalid_input_exits_2_and_leaves_no_trace(problem, tmp_path, sqlite_uri):
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    path = tmp_path / f"{problem}.npz"
    if problem == "nan":
        bad = vectors.copy()
        bad[17, 3] = np.nan
        write_items(path, ids, bad)
        expected = ["1 row(s) contain NaN or inf", "first at row 17"]
    elif problem == "dimension":
        write_items(path, ids, vectors[:, :16])
        expected = ["dimension mismatch", "16"]
    elif problem == "empty":
        path.write_bytes(b"")
        expected = ["file is empty"]
    else:
        expected = ["file not found"]
    before = _snapshot(sqlite_uri)
    result = _check(sqlite_uri, version, path, "bad", "2026-03-01T00:00:00Z", expect=2)
    message = result.output
    assert path.name in message and all(text in message for text in expected), message
    assert _snapshot(sqlite_uri) == before


def test_unreachable_server_fails_fast_with_exit_1(tmp_path):
    from conftest import free_port

    np.save(tmp_path / "cur.npy", np.zeros((10, 3), dtype=np.float32))     # a window the local checks accept
    result = _check(f"http://127.0.0.1:{free_port()}", "1", tmp_path / "cur.npy", "w", "2026-03-01T00:00:00Z",
                    expect=1)
    assert "error: MLflow" in result.output and "127.0.0.1" in result.output


def test_version_registered_from_run_artifacts_gets_a_logged_model(tmp_path, sqlite_uri):
    client = connect(sqlite_uri)
    experiment_id = client.create_experiment("training", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment_id)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.txt").write_text("item tower")
    client.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")
    client.create_registered_model("from-run")
    mv = client.create_model_version("from-run", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    ids, vectors = movielens_items()
    reference = write_items(tmp_path / "ref.npz", ids, vectors)
    run_cli("reference", "set", "--model", "from-run", "--version", mv.version, "--embeddings", reference,
            "--tracking-uri", sqlite_uri)
    result = json.loads(run_cli("check", "--model", "from-run", "--version", mv.version, "--current", reference,
                                "--policy", POLICY, "--window-id", "w", "--tracking-uri", sqlite_uri, "--json").output)
    model_id = client.get_model_version("from-run", mv.version).tags[tags.LOGGED_MODEL_ID]
    assert {m.run_id for m in client.get_logged_model(model_id).metrics} == {result["run_id"]}


@pytest.mark.parametrize("uri", ["file:///tmp/mlruns", "./mlruns"])
def test_deprecated_file_store_is_refused(uri, tmp_path):
    np.save(tmp_path / "cur.npy", np.zeros((10, 3), dtype=np.float32))     # a window the local checks accept
    result = _check(uri, "1", tmp_path / "cur.npy", "w", "2026-03-01T00:00:00Z", expect=2)
    assert "deprecated file store" in result.output
    assert not (tmp_path / "mlruns").exists()


def test_bad_window_end_and_conflicting_version_flags_exit_2(tmp_path, sqlite_uri):
    np.save(tmp_path / "cur.npy", np.zeros((5, 3), dtype=np.float32))
    result = _check(sqlite_uri, "1", tmp_path / "cur.npy", "w", "yesterday", expect=2)
    assert "--window-end 'yesterday' is not an ISO 8601" in result.output
    for end in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"):    # no UTC datetime holds them
        result = _check(sqlite_uri, "1", tmp_path / "cur.npy", "w", end, expect=2)
        assert f"--window-end '{end}' is outside the years 1 to 9999 in UTC" in result.output
    both = run_cli("check", "--model", "recsys", "--version", "1", "--alias", "champion", "--current",
                   tmp_path / "cur.npy", "--policy", POLICY, "--tracking-uri", sqlite_uri, expect=2)
    assert "exactly one of --version or --alias" in both.output


def test_index_of_another_dimension_is_refused_before_mlflow(tmp_path):
    from drift_decider.inputs.serving_index import ServingIndex

    ids, vectors = movielens_items()
    ServingIndex.build(ids[:200], vectors[:200, :8], kind="exact").save(tmp_path / "index")
    current = write_items(tmp_path / "cur.npz", ids, vectors)
    result = run_cli("check", "--model", "recsys", "--version", "1", "--current", current, "--index",
                     tmp_path / "index", "--policy", POLICY, "--tracking-uri", "http://127.0.0.1:9", expect=2)
    assert "dimension mismatch: the index holds 8-d vectors" in result.output


def test_history_since_names_its_own_option(sqlite_uri):
    result = run_cli("history", "--model", "recsys", "--since", "yesterday", "--tracking-uri", sqlite_uri, expect=2)
    assert "--since 'yesterday' is not an ISO 8601" in result.output



def test_history_outputs_that_cannot_be_written_exit_2_before_reading(tmp_path, sqlite_uri):
    """Review r19, F6: a plot type matplotlib lacks, a path that cannot hold the file and an empty
    model name were 'unexpected failure's."""
    register_with_reference(sqlite_uri, tmp_path)
    base = ("history", "--model", "recsys", "--version", "1", "--tracking-uri", sqlite_uri)
    assert "expected a .png, .svg, .pdf file" in run_cli(*base, "--plot", tmp_path / "out.txt", expect=2).output
    (tmp_path / "file").write_text("")
    for option, name in (("--plot", "p.png"), ("--html", "r.html")):     # a file where its folder should be
        result = run_cli(*base, option, tmp_path / "file" / name, expect=2)
        assert f"{tmp_path / 'file' / name}: cannot write" in result.output
    assert "--model is empty" in run_cli("history", "--model", "", "--tracking-uri", sqlite_uri, expect=2).output


def test_ids_of_another_kind_are_refused_naming_the_file(tmp_path, sqlite_uri):
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    text_ids = write_items(tmp_path / "text.npz", np.array([f"m{i}" for i in ids]), vectors)
    result = _check(sqlite_uri, version, text_ids, "w", "2026-03-01T00:00:00Z", expect=2)
    assert f"{text_ids}: the reference ids are integers and these ids text" in result.output
