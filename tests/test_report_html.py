"""The drift report of a version (issue 17, point 2): self-contained HTML built from recorded checks,
attached to each check's run and refreshed on the version's LoggedModel, written by `history --html`."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mlflow.artifacts
import numpy as np
from mlflow import MlflowClient

from drift_decider.report.html import render_report
from drift_decider.tracking import tags
from drift_decider.tracking.registry import resolve_version
from support import POLICY, movielens_items, register_with_reference, run_cli, write_items

MODEL = "recs <script>&"          # MLflow takes it (only '/' and ':' are refused); the report must escape it
MARKER = re.compile(r'<circle class="marker" data-action="([^"]*)"')


def _checks(uri: str, tmp_path: Path, version: str, new_item_shares: list[float]) -> list[dict]:
    """A check a day, each with this share of the catalogue's items new to the version (past a fifth,
    the default policy's retrain-catalog-outgrown matches; it fires on the second check in a row)."""
    ids, vectors = movielens_items()
    rng = np.random.default_rng(3)
    outcomes = []
    for day, share in enumerate(new_item_shares, start=1):
        today = ids.copy()
        today[: int(share * len(ids))] += 10_000_000
        current = write_items(tmp_path / f"d{day}.npz", today, vectors + rng.normal(scale=0.005, size=vectors.shape))
        outcomes.append(json.loads(run_cli(
            "check", "--model", MODEL, "--version", version, "--current", current, "--policy", POLICY,
            "--window-id", f"d{day} <b>", "--window-end", f"2026-04-0{day}T00:00:00Z", "--tracking-uri", uri,
            "--json").stdout))
    return outcomes


def _charts(page: str) -> dict[str, str]:
    return dict(re.findall(r'<svg[^>]*data-metric="([^"]+)"[^>]*>(.*?)</svg>', page, re.S))


def _assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower() and "src=" not in page.lower() and "href=" not in page.lower()
    assert MODEL not in page and "recs &lt;script&gt;&amp;" in page
    assert "d1 <b>" not in page and "d1 &lt;b&gt;" in page


def test_history_html_and_the_reports_attached_to_runs_and_the_model(tmp_path: Path, sqlite_uri: str) -> None:
    version, _ = register_with_reference(sqlite_uri, tmp_path, name=MODEL)
    outcomes = _checks(sqlite_uri, tmp_path, version, [0.0, 0.0, 0.3, 0.3])
    assert [o["action"] for o in outcomes] == ["none", "none", "none", "retrain"]
    assert "retrain-catalog-outgrown (not-sustained)" in outcomes[2]["held"]
    page_path = tmp_path / "out" / "report.html"
    run_cli("history", "--model", MODEL, "--version", version, "--html", page_path, "--tracking-uri", sqlite_uri)
    page = page_path.read_text(encoding="utf-8")
    _assert_self_contained(page)

    charts = _charts(page)
    assert {"mmd2", "norm_ratio", "catalog.new_item_share"} <= set(charts)
    for metric, svg in charts.items():       # one marker per decided window, coloured by its decision
        assert MARKER.findall(svg) == [o["action"] for o in outcomes], metric
    latest = outcomes[-1]
    assert re.search(rf'class="latest-action">{re.escape(latest["action"])}<', page)
    assert re.search(rf'class="latest-rule">{re.escape(latest["rule_id"] or "-")}<', page)
    assert all(o["run_id"] in page for o in outcomes)
    threshold = re.search(r'<line class="threshold"[^>]*/><text[^>]*>([^<]*)<title>', charts["catalog.new_item_share"])
    assert threshold and threshold.group(1).startswith("0.2: &gt; in retrain-catalog-outgrown")
    assert "retrain-catalog-outgrown (not-sustained)" in page        # the rule held back on day 3
    audit = json.loads(run_cli("audit", "--decision-id", latest["run_id"], "--tracking-uri", sqlite_uri,
                               "--json").stdout)
    assert all(rule["rule"] in page for rule in audit["decision"]["rules"])

    # each check attached the report as it stood after it landed; the version's LoggedModel has the latest
    client = MlflowClient(sqlite_uri, sqlite_uri)
    for number, outcome in enumerate(outcomes, start=1):
        attached = Path(client.download_artifacts(outcome["run_id"], tags.REPORT_ARTIFACT, str(tmp_path))).read_text()
        _assert_self_contained(attached)
        assert len(MARKER.findall(_charts(attached)["mmd2"])) == number
    model_id = resolve_version(client, MODEL, version).model_id
    assert tags.REPORT_ARTIFACT in [f.path for f in client.list_logged_model_artifacts(model_id, "drift_decider")]
    on_model = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"{client.get_logged_model(model_id).artifact_location}/{tags.REPORT_ARTIFACT}",
        dst_path=str(tmp_path / "model"), tracking_uri=sqlite_uri)).read_text()
    assert MARKER.findall(_charts(on_model)["mmd2"]) == [o["action"] for o in outcomes]


def test_history_html_needs_a_version(tmp_path: Path, sqlite_uri: str) -> None:
    register_with_reference(sqlite_uri, tmp_path)
    result = run_cli("history", "--model", "recsys", "--html", tmp_path / "r.html", "--tracking-uri", sqlite_uri,
                     expect=2)
    assert "--version" in result.output and not (tmp_path / "r.html").exists()


def test_a_report_that_cannot_be_attached_never_fails_the_check(tmp_path: Path, sqlite_uri: str) -> None:
    version, _ = register_with_reference(sqlite_uri, tmp_path)
    client = MlflowClient(sqlite_uri, sqlite_uri)
    model_id = resolve_version(client, "recsys", version).model_id
    # the model's report path points into a folder that does not exist: writing it fails (as root, too)
    folder = Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://")) / "drift_decider"
    (folder / "report.html").symlink_to(tmp_path / "missing" / "report.html")
    ids, vectors = movielens_items()
    spool = tmp_path / "spool"
    result = run_cli("check", "--model", "recsys", "--version", version, "--current",
                     write_items(tmp_path / "d1.npz", ids, vectors), "--policy", POLICY, "--window-id", "d1",
                     "--window-end", "2026-04-01T00:00:00Z", "--tracking-uri", sqlite_uri, "--spool-dir", spool,
                     "--json")
    outcome = json.loads(result.stdout)
    assert "warning: the drift report" in result.stderr
    assert not spool.exists() or not any(spool.iterdir())
    run = client.get_run(outcome["run_id"])
    assert run.data.tags[tags.COMPLETE] == "true" and run.info.status == "FINISHED"
    rows = json.loads(run_cli("history", "--model", "recsys", "--tracking-uri", sqlite_uri, "--json").stdout)
    assert [row["run_id"] for row in rows] == [outcome["run_id"]]


def test_noise_unit_charts_show_the_default_threshold_and_the_noise_floor() -> None:
    """Rows as `history` returns them, for a version with a noise floor: the floor is drawn where it was
    recorded, and a .noise_units chart shows the default policy's limit when the trace names none."""
    start = datetime(2026, 3, 2, tzinfo=timezone.utc)
    rows = [{"window_end": start + timedelta(days=7 * n), "window_id": f"2026-w{10 + n}", "action": action,
             "rule_id": None, "held": "", "decision_id": f"{n:064x}", "run_id": f"{n:032x}",
             "noise_floor": "3 siblings", "metrics": {"knn_turnover.noise_units": 0.8 + n, "knn_turnover": 0.01 * n,
                                                      "knn_turnover.noise_floor": 0.02}}
            for n, action in enumerate(["none", "none", "retrain"])]
    page = render_report(rows, None, model="recs", version="3", metrics=["knn_turnover.noise_units", "knn_turnover"])
    charts = _charts(page)
    units, raw = charts["knn_turnover.noise_units"], charts["knn_turnover"]
    assert MARKER.findall(units) == ["none", "none", "retrain"]
    assert re.search(r'<line class="threshold"[^>]*/><text[^>]*>2: &gt; in the default policy<', units)
    assert 'class="noise-floor"' in units and 'class="noise-floor"' in raw and 'class="threshold"' not in raw
    assert "2026-03-02" in units and "2026-03-16" in units          # the x axis: window end dates
