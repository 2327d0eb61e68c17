"""History table and plot, and alias promotion gated by a policy."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.artifacts
import numpy as np
import pytest

from drift_decider.tracking import tags
from drift_decider.tracking.connection import connect
from drift_decider.tracking.registry import resolve_version
from support import POLICY, movielens_items, register_with_reference, run_cli, write_items

GATE = POLICY.parent / "promotion-gate.yaml"


def test_history_lists_checks_and_plots_markers(tmp_path, sqlite_uri):
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    rng = np.random.default_rng(3)
    for day, scale in enumerate([1.0, 1.0, 1.6, 1.6], start=1):
        current = write_items(tmp_path / f"d{day}.npz", ids,
                              scale * vectors + rng.normal(scale=0.005, size=vectors.shape))
        run_cli("check", "--model", "recsys", "--version", version, "--current", current, "--policy", POLICY,
                "--window-id", f"d{day}", "--window-end", f"2026-04-0{day}T00:00:00Z", "--tracking-uri", sqlite_uri)
    plot = tmp_path / "history.png"
    rows = json.loads(run_cli("history", "--model", "recsys", "--tracking-uri", sqlite_uri, "--json",
                              "--plot", plot).stdout)
    assert [r["window_id"] for r in rows] == ["d1", "d2", "d3", "d4"]
    assert rows[2]["metrics"]["norm_ratio"] > 1.5 > rows[0]["metrics"]["norm_ratio"]
    since = json.loads(run_cli("history", "--model", "recsys", "--since", "2026-04-03", "--tracking-uri",
                               sqlite_uri, "--json").stdout)
    assert [r["window_id"] for r in since] == ["d3", "d4"]
    table = run_cli("history", "--model", "recsys", "--tracking-uri", sqlite_uri).stdout
    assert "norm_ratio" in table and all(r["run_id"][:8] in table for r in rows)

    import matplotlib.image

    image = matplotlib.image.imread(plot)
    assert image.shape[0] > 300 and image.shape[1] > 600
    rgb = image[..., :3]
    # decision markers: green (none) must be drawn; the lines are grey
    green = (rgb[..., 1] > 0.5) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.3)
    assert green.sum() > 50
    actions = {r["action"] for r in rows}
    if "recalibrate" in actions:
        orange = (rgb[..., 0] > 0.9) & (rgb[..., 1] > 0.4) & (rgb[..., 1] < 0.6) & (rgb[..., 2] < 0.2)
        assert orange.sum() > 20


def test_the_version_names_its_latest_window_not_the_last_written(tmp_path, sqlite_uri):
    """Publishing reads only the run of the latest window (ordered by its end, in MLflow): a backfilled
    earlier window, checked last, leaves the version's tags on the later one; ends half a second apart
    order as times do (a whole second's ISO form is shorter than a fractional one's)."""
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    current = write_items(tmp_path / "cur.npz", ids, vectors)
    for window_id, end in (("later", "2026-04-02T00:00:00.500Z"), ("earlier", "2026-04-02T00:00:00Z"),
                           ("first", "2026-04-01T00:00:00Z")):
        run_cli("check", "--model", "recsys", "--version", version, "--current", current, "--policy", POLICY,
                "--window-id", window_id, "--window-end", end, "--tracking-uri", sqlite_uri)
    client = connect(sqlite_uri)
    mv_tags = client.get_model_version("recsys", version).tags
    assert mv_tags[tags.WINDOW_ID] == "later" and json.loads(mv_tags[tags.LATEST])[tags.WINDOW_ID] == "later"
    # the report the last, backfilled check refreshed on the version's model charts every window
    logged = client.get_logged_model(resolve_version(client, "recsys", version).model_id)
    report = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{logged.artifact_location}/{tags.REPORT_ARTIFACT}",
                                                      dst_path=str(tmp_path / "model"), tracking_uri=sqlite_uri))
    assert all(f">{window}<" in report.read_text() for window in ("first", "earlier", "later"))


def test_promotion_moves_alias_only_when_the_gate_passes(tmp_path, sqlite_uri):
    client = connect(sqlite_uri)
    champion, reference = register_with_reference(sqlite_uri, tmp_path)
    client.set_registered_model_alias("recsys", "champion", champion)
    ids, vectors = movielens_items()
    # a candidate trained on data that no longer looks like production: blocked
    drifted, _ = register_with_reference(sqlite_uri, tmp_path / "drifted")
    shifted = write_items(tmp_path / "prod.npz", ids, vectors * 1.6 + 0.3)
    blocked = json.loads(run_cli("promote", "--model", "recsys", "--candidate", drifted, "--current", shifted,
                                 "--policy", GATE, "--tracking-uri", sqlite_uri, "--json").stdout)
    assert not blocked["passed"] and not blocked["alias_moved"] and blocked["action"] != "none"
    assert str(client.get_model_version_by_alias("recsys", "champion").version) == champion
    tags_after = client.get_model_version("recsys", drifted).tags
    assert tags_after["drift_decider.promotion.decision"] == blocked["action"]
    assert tags_after["drift_decider.promotion.previous_holder"] == champion
    assert tags_after["drift_decider.promotion.passed"] == "false"
    run = client.get_run(blocked["run_id"])
    assert run.data.tags[tags.KIND] == "promotion" and run.data.tags[tags.DECISION] == blocked["action"]
    # the promotion gate fails closed without index evidence; with it, a candidate matching
    # production passes and takes the alias
    from drift_decider.inputs.serving_index import ServingIndex

    ServingIndex.build(ids, vectors, kind="exact").save(tmp_path / "index")
    good, _ = register_with_reference(sqlite_uri, tmp_path / "good")
    dry = json.loads(run_cli("promote", "--model", "recsys", "--candidate", good, "--current", reference,
                             "--index", tmp_path / "index", "--policy", GATE, "--tracking-uri", sqlite_uri,
                             "--dry-run", "--json").stdout)
    assert dry["passed"] and not dry["alias_moved"] and dry["run_id"] is None
    assert str(client.get_model_version_by_alias("recsys", "champion").version) == champion
    passed = json.loads(run_cli("promote", "--model", "recsys", "--candidate", good, "--current", reference,
                                "--index", tmp_path / "index", "--policy", GATE, "--tracking-uri", sqlite_uri,
                                "--json").stdout)
    assert passed["passed"] and passed["alias_moved"], passed["decision"].get("explanation")
    assert str(client.get_model_version_by_alias("recsys", "champion").version) == good
    assert client.get_model_version("recsys", good).tags["drift_decider.promotion.previous_holder"] == champion


def test_reading_a_wrong_model_or_store_says_so_and_creates_nothing(tmp_path, sqlite_uri):
    register_with_reference(sqlite_uri, tmp_path)
    typo = run_cli("history", "--model", "recsyss", "--tracking-uri", sqlite_uri, expect=2)
    assert "no registered model 'recsyss'" in typo.output and "did you mean 'recsys'" in typo.output
    assert f"in the store at {sqlite_uri}" in typo.output
    missing = tmp_path / "elsewhere" / "mlflow.db"
    for command in (["history", "--model", "recsys"], ["audit", "--decision-id", "0" * 64]):
        result = run_cli(*command, "--tracking-uri", f"sqlite:///{missing}", expect=2)
        assert f"no MLflow store at {missing}" in result.output
    assert not missing.exists()


def test_promoting_the_holder_is_a_no_op_and_the_printed_undo_works(tmp_path, sqlite_uri):
    """Issue 15, #6: promoting the version that holds the alias recorded a second run and named the
    holder its own predecessor; the undo was a Python call."""
    import shlex

    from drift_decider import api
    from drift_decider.inputs.serving_index import ServingIndex

    client = connect(sqlite_uri)
    champion, reference = register_with_reference(sqlite_uri, tmp_path)
    client.set_registered_model_alias("recsys", "champion", champion)
    ids, vectors = movielens_items()
    ServingIndex.build(ids, vectors, kind="exact").save(tmp_path / "index")
    again = api.promote("recsys", champion, "champion", reference, GATE, index_path=tmp_path / "index",
                        tracking_uri=sqlite_uri)
    assert again.already_held and not again.moved and again.run_id is None and again.undo is None
    assert "drift_decider.promotion.previous_holder" not in client.get_model_version("recsys", champion).tags
    good, _ = register_with_reference(sqlite_uri, tmp_path / "good")
    moved = api.promote("recsys", good, "champion", reference, GATE, index_path=tmp_path / "index",
                        tracking_uri=sqlite_uri)
    assert moved.moved and moved.undo == f"drift-decider rollback --model recsys --alias champion --to {champion}"
    run_cli(*shlex.split(moved.undo)[1:], "--tracking-uri", sqlite_uri)
    assert str(client.get_model_version_by_alias("recsys", "champion").version) == champion


def test_audit_finds_a_decision_by_prefix_or_run_id_and_history_shows_held_rules(tmp_path, sqlite_uri):
    """Issue 15, #5 and #7: audit needed the full 64-digit id; a rule held back (here by `for: 2`) was
    invisible in history."""
    from drift_decider import api

    version, _ = register_with_reference(sqlite_uri, tmp_path)
    policy = tmp_path / "sustained.yaml"
    policy.write_text("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: sustained, version: '1'}\n"
                      "rules:\n  - {id: rescale, action: recalibrate, when: 'norm_ratio > 1.1', for: 2}\n")
    ids, vectors = movielens_items()
    outcomes = [api.check("recsys", write_items(tmp_path / f"d{day}.npz", ids, vectors * 1.4), policy,
                          version=version, tracking_uri=sqlite_uri, window_id=f"d{day}",
                          window_end=f"2026-04-0{day}T00:00:00Z") for day in (1, 2)]
    assert [o.action for o in outcomes] == ["none", "recalibrate"]
    rows = api.history("recsys", tracking_uri=sqlite_uri)
    assert rows[0]["held"].startswith("rescale (") and rows[1]["held"] == ""
    assert outcomes[0].to_dict()["held"] == rows[0]["held"]
    first = rows[0]
    for key in (first["decision_id"][:8], first["decision_id"].upper()[:12], first["run_id"]):
        assert api.audit(key, tracking_uri=sqlite_uri)["run_id"] == first["run_id"]
    for key, message in (("zz", "neither a decision id"), ("abcdef", "no recorded decision")):
        result = run_cli("audit", "--decision-id", key, "--tracking-uri", sqlite_uri, expect=2)
        assert message in result.output


@pytest.mark.parametrize("policy", ["recommender-default.yaml", "conservative.yaml"])
def test_a_policy_whose_rules_need_earlier_checks_is_refused_as_a_gate(tmp_path: Path, sqlite_uri: str,
                                                                        policy: str) -> None:
    """Newcomer review s7: promote with the default policy passed a candidate 14x beyond its refit noise
    (its retrain rules wait for `for: 2` checks, and a gate decides once); refused before anything is read."""
    missing = tmp_path / "not-there.npz"
    result = run_cli("promote", "--model", "recsys", "--candidate", "1", "--current", missing, "--policy",
                     GATE.parent / policy, "--tracking-uri", sqlite_uri, expect=2)
    assert "a promotion gate decides once, on no history" in result.output and str(missing) not in result.output
    assert "promotion-gate.yaml" in result.output


def test_a_missing_alias_says_how_to_set_it_not_how_to_register(tmp_path: Path, sqlite_uri: str) -> None:
    """Newcomer review s7: `check --alias champion` on a model with versions suggested `register`."""
    register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    result = run_cli("check", "--model", "recsys", "--alias", "champion", "--current",
                     write_items(tmp_path / "today.npz", ids, vectors), "--policy", POLICY, "--tracking-uri",
                     sqlite_uri, expect=2)
    assert "has no alias 'champion' (it has version 1)" in result.output, result.output
    assert "drift-decider promote --model recsys" in result.output and "drift-decider register" not in result.output


def test_history_of_a_version_that_does_not_exist_says_so(tmp_path, sqlite_uri):
    """Review s8, automation #11: `history --version 99` printed an empty table, exit 0."""
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    output = run_cli("history", "--model", "recsys", "--version", "99", "--tracking-uri", sqlite_uri, expect=2).output
    assert f"has no version 99 (it has version {version})" in output, output
