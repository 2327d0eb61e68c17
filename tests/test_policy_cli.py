"""The `policy` command group: validate, test, explain; human and JSON output; exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from drift_decider.cli.policy_commands import policy_group

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "policies" / "recommender-default.yaml"
HEADER = "apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: t, version: '1'}\n"


def invoke(*args: str):
    return CliRunner().invoke(policy_group, [str(a) for a in args])


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_help_documents_exit_codes() -> None:
    for command in ([], ["validate"], ["test"], ["explain"], ["backtest"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Exit codes: 0 ok; 2 invalid policy" in result.output


def test_validate_ok_and_json() -> None:
    result = invoke("validate", DEFAULT)
    assert result.exit_code == 0 and "ok: policy recommender-default" in result.output
    report = json.loads(invoke("validate", "--json", DEFAULT).output)
    assert report["ok"] and report["files"][0]["rules"] == 8 and len(report["files"][0]["sha256"]) == 64


def test_validate_reports_located_error_and_exit_2(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml",
                HEADER + "rules:\n  - {id: r, action: retrain, when: 'knn_jacard < 1'}\n")
    result = invoke("validate", DEFAULT, bad)
    assert result.exit_code == 2
    assert f"{bad}:5:37: unknown metric 'knn_jacard' (did you mean 'knn_jaccard'?)" in result.output
    report = json.loads(invoke("validate", "--json", bad).output)
    assert report["ok"] is False and "did you mean" in report["files"][0]["error"]


def test_validate_warnings_pass_unless_strict(tmp_path: Path) -> None:
    shaky = write(tmp_path, "shaky.yaml", HEADER + "rules:\n"
                  "  - {id: r, action: retrain, when: 'norm_ratio > 0.7 and norm_ratio < 0.5'}\n")
    loose = invoke("validate", shaky)
    assert loose.exit_code == 0 and "warning: rule 'r' can never fire" in loose.output
    assert invoke("validate", "--strict", shaky).exit_code == 2


def test_test_command_passes_shipped_tests() -> None:
    files = sorted((ROOT / "policies" / "tests").glob("*.test.yaml"))
    result = invoke("test", *files)
    assert result.exit_code == 0 and result.output.count(": ok:") == len(files) >= 3


def test_failing_policy_test_shows_a_readable_diff(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml",
          HEADER + "rules:\n  - {id: r, action: retrain, for: 2, when: 'knn_jaccard < 0.5'}\n")
    tests = write(tmp_path, "p.test.yaml", """\
apiVersion: drift-decider/v1
kind: PolicyTest
policy: p.yaml
tests:
  - name: retrains at once
    steps:
      - metrics: {knn_jaccard: 0.3}
        expect: {action: retrain, rule: r, suppressed: []}
      - metrics: {knn_jaccard: 0.3}
        expect: {action: retrain}
""")
    result = invoke("test", tests)
    assert result.exit_code == 2
    out = result.output
    assert f"{tests}:8:17: FAIL 'retrains at once' step 1" in out
    assert "action:     expected retrain          got none" in out
    assert "rule:       expected r                got -" in out
    assert "suppressed: extra    r: not-sustained" in out
    assert "held on 1 of 2 consecutive checks" in out          # the trace
    assert "step 2" not in out
    report = json.loads(invoke("test", "--json", tests).output)
    assert report["ok"] is False and report["files"][0]["failures"][0]["step"] == 1


@pytest.mark.parametrize("body, message", [
    ("policy: missing.yaml\ntests: [{name: x, steps: [{}]}]\n", "does not exist"),
    ("policy: p.yaml\ntests: [{name: x, steps: [{expect: {action: retrain, rule: nope}}]}]\n",
     "no rule 'nope'"),
    ("policy: p.yaml\ntests: [{name: x, steps: [{metrics: {knn_jaccard: high}}]}]\n", "must be a number"),
    ("policy: p.yaml\ntests: [{name: x, steps: [{expect: {action: none, "
     "suppressed: [{rule: r, reason: why}]}}]}]\n",
     "'why' is not one of"),
    ("policy: p.yaml\ntests: [{name: x, stepz: []}]\n", "did you mean 'steps'"),
    ("policy: p.yaml\ntests: [{name: x, steps: [{metrics: {knn_jacard: 0.2}}]}]\n",
     "unknown metric 'knn_jacard' (did you mean 'knn_jaccard'?)"),
])
def test_broken_test_files_exit_2_with_location(tmp_path: Path, body: str, message: str) -> None:
    write(tmp_path, "p.yaml", HEADER + "rules:\n  - {id: r, action: retrain, when: 'knn_jaccard < 0.5'}\n")
    tests = write(tmp_path, "t.yaml", "apiVersion: drift-decider/v1\nkind: PolicyTest\n" + body)
    result = invoke("test", tests)
    assert result.exit_code == 2 and message in result.output and f"{tests}:" in result.output


def test_explain_human_and_json(tmp_path: Path) -> None:
    metrics = write(tmp_path, "m.json",
                    json.dumps({"values": {"index.recall_at_k": 0.8, "knn_jaccard": 0.9}}))
    history = write(tmp_path, "h.json", json.dumps([{"window_id": "w1", "window_end": "2026-03-01T00:00:00Z",
                                                     "metrics": {}, "action": "none"}]))
    args = ("explain", "--policy", DEFAULT, "--metrics", metrics, "--history", history,
            "--now", "2026-03-02T00:00:00Z", "--context", "model=recs")
    human = invoke(*args)
    assert human.exit_code == 0
    assert "Decision: refresh-index (rule refresh-index-health" in human.output
    assert "index.recall_at_k < $recall_floor (0.9)" in human.output
    record = json.loads(invoke(*args, "--json").output)
    assert record["action"] == "refresh-index" and record["inputs"]["context"] == {"model": "recs"}
    assert record["inputs"]["history"]["checks"] == 1
    assert invoke(*args, "--json").output == invoke(*args, "--json").output     # deterministic


@pytest.mark.parametrize("metrics_text, extra, message", [
    ("{not json", (), "not valid JSON"),
    ('{"knn_jaccard": "high"}', (), "must be a number"),
    ('[1, 2]', (), "expected a mapping"),
    ('{}', ("--now", "tomorrow"), "not an ISO 8601 time"),
    ('{}', ("--context", "novalue"), "expected KEY=VALUE"),
    ('{"knn_jaccard": 1' + '0' * 400 + '}', (), "m.json: metric 'knn_jaccard' is too large for a number"),
    ('[' * 100_000 + ']' * 100_000, (), "m.json: metrics file nests lists or objects too deeply"),
    ('{}', ("--now", "0001-01-01T00:00:00+05:00"), "--now '0001-01-01T00:00:00+05:00' is outside the years 1 to 9999"),
])
def test_explain_bad_input_exits_2(tmp_path: Path, metrics_text: str, extra: tuple, message: str) -> None:
    metrics = write(tmp_path, "m.json", metrics_text)
    result = invoke("explain", "--policy", DEFAULT, "--metrics", metrics, *extra)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    as_json = invoke("explain", "--policy", DEFAULT, "--metrics", metrics, "--json", *extra)
    assert as_json.exit_code == 2 and json.loads(as_json.output)["ok"] is False


@pytest.mark.parametrize("check, message", [
    ({"window_end": "0001-01-01T00:00:00+05:00"}, "window_end '0001-01-01T00:00:00+05:00' is outside the years"),
    ({"window_end": "2026-01-01T00:00:00Z", "metrics": {"knn_jaccard": 10**400}}, "is too large for a number"),
    ({"window_end": "2026-01-01T00:00:00Z", "action": "explode"}, "unknown action 'explode'"),
])
@pytest.mark.parametrize("command", ["explain", "backtest"])
def test_a_bad_history_check_exits_2_naming_the_file_and_check(tmp_path: Path, check: dict, message: str,
                                                               command: str) -> None:
    history = write(tmp_path, "h.json", json.dumps([{"window_id": "w1", **check}]))
    extra = ("--metrics", write(tmp_path, "m.json", "{}")) if command == "explain" else ()
    result = invoke(command, "--policy", DEFAULT, "--history", history, *extra)
    assert result.exit_code == 2, result.output
    assert f"error: {history}: " in result.output and "'w1'" in result.output and message in result.output


def test_explain_missing_files_exit_2(tmp_path: Path) -> None:
    missing = invoke("explain", "--policy", tmp_path / "none.yaml", "--metrics", tmp_path / "m.json")
    assert missing.exit_code == 2
    metrics = write(tmp_path, "m.json", "{}")
    assert invoke("explain", "--policy", DEFAULT, "--metrics", metrics,
                  "--history", tmp_path / "nope.json").exit_code == 2


def test_explain_names_a_misspelt_metric_instead_of_deciding_without_it(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"knn_turnover.noise_unit": 3.0, "knn_turnover": 0.3}))
    result = invoke("explain", "--policy", DEFAULT, "--metrics", metrics)
    assert result.exit_code == 2
    assert "unknown metric 'knn_turnover.noise_unit' (did you mean 'knn_turnover.noise_units'?)" in result.output


def test_explain_reads_what_check_and_audit_print_with_json(tmp_path: Path, sqlite_uri: str) -> None:
    """Newcomer review s7: explain refused `check --json` and `audit --json` output ("unknown metric
    'model'"); it reads their metrics and decides as the check did."""
    from support import movielens_items, register_with_reference, run_cli, write_items

    version, _ = register_with_reference(sqlite_uri, tmp_path)
    ids, vectors = movielens_items()
    today = write_items(tmp_path / "today.npz", ids, vectors * 1.3)
    checked = run_cli("check", "--model", "recsys", "--version", version, "--current", today, "--policy", DEFAULT,
                      "--window-id", "w1", "--window-end", "2026-03-01T00:00:00Z", "--tracking-uri", sqlite_uri,
                      "--json").output
    audited = run_cli("audit", "--model", "recsys", "--version", version, "--window-id", "w1", "--tracking-uri",
                      sqlite_uri, "--json").output
    check = json.loads(checked)
    for name, text in (("check.json", checked), ("audit.json", audited)):
        result = invoke("explain", "--policy", DEFAULT, "--metrics", write(tmp_path, name, text), "--now",
                        "2026-03-01T00:00:00Z", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["action"] == check["action"]
