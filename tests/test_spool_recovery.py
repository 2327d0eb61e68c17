"""Spool recovery when things fail again (review of issues 15 #11 and 16 #10): a sync that fails while
deciding leaves no claim behind; entries land in window order; one store down holds back only its
own entries; a completion tag lost after its metrics landed keeps the run whole instead of a second
copy of every point. Faults are injected in-process against real sqlite stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

import drift_decider.tracking.landing as landing
from drift_decider.tracking import tags
from drift_decider.tracking.connection import connect
from drift_decider.tracking.registry import ensure_experiment, read_claims, register_external_model, resolve_version
from support import POLICY, check_args, movielens_items, register_with_reference, run_cli, write_items

GATE = POLICY.parent / "promotion-gate.yaml"


def _flaky_history(monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
    """The next ``failures`` reads of a version's whole history (decide_in_order) fail, as MLflow can."""
    real = landing.check_runs
    left = [failures]

    def flaky(client, experiment_id, ref, **kwargs):
        if not kwargs.get("window_id") and left[0] > 0:
            left[0] -= 1
            raise MlflowException("injected: history read failed")
        return real(client, experiment_id, ref, **kwargs)

    monkeypatch.setattr(landing, "check_runs", flaky)


def _spool_undecided(tmp_path: Path, uri: str, monkeypatch: pytest.MonkeyPatch, policy: Path,
                     windows: dict[str, str]) -> tuple[str, Path]:
    """A registered version and one undecided spool entry per window (id -> end): each check's
    history read failed. Returns the version and the spool."""
    version, _ = register_with_reference(uri, tmp_path)
    ids, vectors = movielens_items()
    current = write_items(tmp_path / "cur.npz", ids, vectors * 1.3)
    _flaky_history(monkeypatch, len(windows))
    for window_id, end in windows.items():
        run_cli(*check_args(uri, version, current, window_id, policy=policy, window_end=end, spool=tmp_path / "spool"),
                expect=1)
    return version, tmp_path / "spool"


@pytest.mark.parametrize("failure", ["policy-broken", "mlflow-fails-again"])
def test_a_sync_failing_while_deciding_releases_the_window(tmp_path: Path, sqlite_uri: str,
                                                           monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    policy = tmp_path / "policy.yaml"
    shutil.copy(POLICY, policy)
    version, spool = _spool_undecided(tmp_path, sqlite_uri, monkeypatch, policy, {"w1": "2026-01-01T00:00:00Z"})
    if failure == "policy-broken":
        policy.write_text("rules: [unclosed\n")
        (outcome,) = json.loads(run_cli("sync", "--spool-dir", spool, "--json", expect=2).output)
        assert outcome["status"] == "skipped" and str(policy) in outcome["reason"]
        shutil.copy(POLICY, policy)
    else:
        _flaky_history(monkeypatch, 1)
        run_cli("sync", "--spool-dir", spool, "--json", expect=1)
    client = connect(sqlite_uri)
    claim = read_claims(client, resolve_version(client, "recsys", version).model_id)[
        landing._claim_prefix("check", "w1")]
    assert claim.released
    (landed,) = json.loads(run_cli("sync", "--spool-dir", spool, "--json").output)
    assert landed["status"] == "recorded"


def test_sync_lands_entries_in_window_order(tmp_path: Path, sqlite_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two undecided entries whose file names sort against their window order: the earlier window is
    decided and landed first, so the later one neither waits for it nor is deferred."""
    _, spool = _spool_undecided(tmp_path, sqlite_uri, monkeypatch, POLICY,
                                {"b-early": "2026-01-01T00:00:00Z", "a-late": "2026-01-02T00:00:00Z"})
    monkeypatch.setattr(landing, "WAIT_SECONDS", 3.0)
    outcomes = json.loads(run_cli("sync", "--spool-dir", spool, "--json").output)
    assert [o["status"] for o in outcomes] == ["recorded", "recorded"]
    rows = json.loads(run_cli("history", "--model", "recsys", "--tracking-uri", sqlite_uri, "--json").output)
    assert [row["window_id"] for row in rows] == ["b-early", "a-late"]
    client = connect(sqlite_uri)        # each landed check carries the report as it stood when it landed
    reports = [Path(client.download_artifacts(row["run_id"], tags.REPORT_ARTIFACT, str(tmp_path / row["window_id"])))
               .read_text() for row in rows]
    assert ">b-early<" in reports[0] and ">a-late<" not in reports[0]
    assert ">b-early<" in reports[1] and ">a-late<" in reports[1]


def test_an_entry_for_a_store_that_is_gone_holds_back_only_itself(tmp_path: Path, sqlite_uri: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, spool = _spool_undecided(tmp_path, sqlite_uri, monkeypatch, POLICY, {"w1": "2026-01-01T00:00:00Z"})
    (good,) = spool.glob("*.json")
    gone = json.loads(good.read_text())
    gone["tracking_uri"] = f"sqlite:///{tmp_path / 'deleted-staging.db'}"
    gone["window"]["window_id"] = "staging-w1"
    (spool / "aaa-staging.json").write_text(json.dumps(gone))
    outcomes = json.loads(run_cli("sync", "--spool-dir", spool, "--json", expect=2).output)
    assert sorted(o["status"] for o in outcomes) == ["recorded", "skipped"]
    assert not good.exists() and (spool / "aaa-staging.json").exists()
    assert not (tmp_path / "deleted-staging.db").exists()


def test_a_lost_completion_tag_after_the_metrics_keeps_one_point_per_metric(
        tmp_path: Path, sqlite_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's SQL store commits a batch's metrics and tags in separate transactions; when only the
    completion tag fails, the metrics are on the model already. The check completes its run instead
    of deleting it (which left the points) and spooling a second copy (which added more)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from drift_decider.tracking import tags

    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    current = write_items(tmp_path / "cur.npz", ids, vectors * 1.3)
    spool = tmp_path / "spool"
    real = SqlAlchemyStore._set_tags
    failed = []

    def failing(self, run_id, run_tags):
        if any(tag.key == tags.COMPLETE for tag in run_tags) and not failed:
            failed.append(run_id)
            raise MlflowException("injected: database is locked")
        return real(self, run_id, run_tags)

    monkeypatch.setattr(SqlAlchemyStore, "_set_tags", failing)
    outcome = json.loads(run_cli(*check_args(sqlite_uri, version, current, "w1", window_end="2026-01-01T00:00:00Z",
                                             spool=spool)).output)
    assert failed and outcome["run_id"] == failed[0] and not list(spool.glob("*.json"))
    client = connect(sqlite_uri)
    model = client.get_logged_model(resolve_version(client, "recsys", version).model_id)
    assert [m.run_id for m in model.metrics if m.key == "mmd2"] == [outcome["run_id"]]
    assert client.get_run(outcome["run_id"]).data.tags[tags.COMPLETE] == "true"


def test_promote_is_not_blocked_by_a_holder_that_does_not_know_todays_ids(tmp_path: Path, sqlite_uri: str) -> None:
    """After catalogue turnover the alias holder learned under half of today's ids; that must not
    refuse the promotion of a candidate that knows them (the holder is only compared)."""
    ids, vectors = movielens_items()
    half = len(ids) // 2
    client = connect(sqlite_uri)
    experiment = ensure_experiment(client)
    old, new = (register_external_model(client, sqlite_uri, "recsys", experiment_id=experiment).version
                for _ in range(2))
    for version, rows in ((old, slice(None, half)), (new, slice(half, None))):
        run_cli("reference", "set", "--model", "recsys", "--version", version, "--embeddings",
                write_items(tmp_path / f"v{version}.npz", ids[rows], vectors[rows]), "--tracking-uri", sqlite_uri)
    client.set_registered_model_alias("recsys", "champion", old)
    today = write_items(tmp_path / "today.npz", ids[half:], vectors[half:])
    outcome = json.loads(run_cli("promote", "--model", "recsys", "--candidate", new, "--current", today, "--policy",
                                 GATE, "--tracking-uri", sqlite_uri, "--spool-dir", tmp_path / "spool",
                                 "--json").output)
    assert outcome["incumbent_metrics"] is None and outcome["run_id"]


def test_files_in_the_spool_that_are_not_entries_are_named_and_kept_and_the_rest_lands(
        tmp_path: Path, sqlite_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review r19, F4: one unreadable file made every sync an 'unexpected failure' that landed nothing."""
    _, spool = _spool_undecided(tmp_path, sqlite_uri, monkeypatch, POLICY, {"w1": "2026-01-01T00:00:00Z"})
    (good,) = spool.glob("*.json")
    entry = json.loads(good.read_text())
    bad = {"garbage.json": "{not json", "list.json": "[1]", "bytes.json": b"\xff\xfe",
           "window.json": json.dumps({**entry, "window": "oops"}),
           "payload.json": json.dumps({**entry, "payload": {"metrics": "x"}}),
           # review s7, B6: fields with defaults went unchecked and crashed sync; a padded time was re-parsed
           "attempts.json": json.dumps({**entry, "attempts": 5}),
           "attempt-item.json": json.dumps({**entry, "attempts": [1]}),
           "step.json": json.dumps({**entry, "step": True}),
           "uri.json": json.dumps({**entry, "tracking_uri": None}),
           # review s8, hostile #9: a decision without its keys crashed sync; a window MLflow cannot
           # record failed it with its claim held for an hour
           "decision.json": json.dumps({**entry, "payload": {**entry["payload"], "decision": {}}}),
           "action.json": json.dumps({**entry, "payload": {**entry["payload"], "decision": {
               "action": "explode", "decided_at": "2026-01-01T00:00:00Z", "decision_id": "x"}}}),
           "old.json": json.dumps({**entry, "window": {**entry["window"], "window_end": "0001-01-01T00:00:00Z"}})}
    padded = json.dumps({**entry, "window": {**entry["window"], "window_end": " 2026-01-02T00:00:00Z "}})
    for name, text in bad.items():
        (spool / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    (spool / "padded.json").write_text(padded.replace('"w1"', '"w2"'))
    outcomes = {o["entry"]: o for o in json.loads(run_cli("sync", "--spool-dir", spool, "--json", expect=2).output)}
    assert outcomes[good.name]["status"] == "recorded" and outcomes["padded.json"]["status"] == "recorded"
    for name in bad:
        assert outcomes[name]["status"] == "skipped" and str(spool / name) in outcomes[name]["reason"], outcomes[name]
        assert (spool / name).exists()


def test_sync_of_a_spool_folder_that_is_not_there_lands_nothing_and_creates_nothing(tmp_path: Path,
                                                                                     sqlite_uri: str) -> None:
    """Review s8, automation #11: sync created a mistyped --spool-dir. A folder not there yet is what the
    docs' cron line meets until the first check is spooled: nothing to land, exit 0; a file is refused."""
    assert json.loads(run_cli("sync", "--spool-dir", tmp_path / "spoll", "--tracking-uri", sqlite_uri,
                              "--json").output) == []
    assert not (tmp_path / "spoll").exists()
    (tmp_path / "file").write_text("x")
    output = run_cli("sync", "--spool-dir", tmp_path / "file", "--tracking-uri", sqlite_uri, expect=2).output
    assert "is a file" in output, output
