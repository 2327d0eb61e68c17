"""policy backtest: replaying recorded checks decides exactly as deciding them one by one would, with
the policy's own decisions (not the recorded ones) as the history that cooldowns and ``for`` read."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from drift_decider.cli_policy import policy_group
from drift_decider.errors import InputError
from drift_decider.policy import CheckRecord, History, evaluate, parse_policy
from drift_decider.policy.backtest import checks_from_rows, replay, summary
from policy_support import T0

POLICY_TEXT = """\
apiVersion: drift-decider/v1
kind: Policy
metadata: {name: backtest, version: "1"}
rules:
  - {id: shift, action: retrain, for: 2, cooldown: 5d, when: 'knn_jaccard < 0.5'}
  - {id: scale, action: recalibrate, when: {metric: norm_ratio, slope: {window: 3}, op: gt, value: 0.01}}
"""
POLICY = parse_policy(POLICY_TEXT)


def rows(n: int = 20) -> list[dict]:
    """Daily checks whose neighbourhoods collapse from day 8 on, all recorded as 'none'."""
    return [{"window_id": f"d{i}", "window_end": (T0 + timedelta(days=i)).isoformat(),
             "metrics": {"knn_jaccard": 0.9 if i < 8 else 0.3, "norm_ratio": 1.0 + 0.03 * max(0, i - 14)},
             "action": "none", "version": "1", "run_id": f"run{i}", "decision_id": f"id{i}"}
            for i in range(n)]


def test_replay_decides_each_check_on_the_decisions_replayed_before_it() -> None:
    before, checks = checks_from_rows(rows())
    steps = list(replay(POLICY, checks, history=before))
    history: list[CheckRecord] = []
    for check, step in zip(checks, steps):
        expected = evaluate(POLICY, check.metrics, History(tuple(history)), check.decided_at,
                            context={"window_id": check.window_id})
        assert step.decision.to_dict() == expected.to_dict()
        history.append(CheckRecord(check.window_id, check.window_end, check.metrics, expected.action,
                                   expected.rule_id, check.decided_at, expected.mode))
    actions = [step.decision.action for step in steps]
    # sustained from day 9; the 5-day cooldown of the *replayed* retrain holds its repeats back to day
    # 14 and 19; the norm-ratio trend (from day 15) recalibrates in between
    assert actions == ["none"] * 9 + ["retrain"] + ["none"] * 4 + ["retrain"] + ["recalibrate"] * 4 + ["retrain"]
    assert steps[8].decision.suppressed_reasons == {("shift", "not-sustained")}
    assert steps[11].decision.suppressed_reasons == {("shift", "cooldown")}
    assert summary(step.to_dict() for step in steps) == {"checks": 20, "actions": {"none": 13, "recalibrate": 4, "retrain": 3},
                              "recorded_actions": {"none": 20}, "agree": 13}


def test_since_takes_earlier_checks_as_recorded() -> None:
    data = rows()
    data[9]["action"] = "retrain"                  # recorded: retrained on day 9
    before, checks = checks_from_rows(data, T0 + timedelta(days=10))
    assert len(before) == 10 and checks[0].window_id == "d10"
    steps = list(replay(POLICY, checks, history=before))
    # the recorded retrain of day 9 keeps the replayed days 10-13 in cooldown
    assert [s.decision.action for s in steps[:4]] == ["none"] * 4
    assert steps[4].decision.action == "retrain"


def test_rows_must_be_oldest_first_and_well_formed() -> None:
    data = rows(3)
    data[1], data[2] = data[2], data[1]
    with pytest.raises(InputError, match="entry 2 .* decided before entry 1"):
        checks_from_rows(data)
    with pytest.raises(InputError, match="unknown keys"):
        checks_from_rows([{**rows(1)[0], "extra": 1}])
    with pytest.raises(InputError, match="JSON list"):
        checks_from_rows({"not": "a list"})


def test_cli_table_json_and_errors(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY_TEXT)
    history = tmp_path / "h.json"
    history.write_text(json.dumps(rows()))
    result = CliRunner().invoke(policy_group, ["backtest", "--policy", str(policy), "--history", str(history)])
    assert result.exit_code == 0, result.output
    assert "d9" in result.output and "retrain  *" in result.output
    assert "over 20 checks (after 0 recorded)" in result.output
    report = json.loads(CliRunner().invoke(policy_group, ["backtest", "--policy", str(policy), "--history",
                                                          str(history), "--json"]).output)
    assert report["summary"]["checks"] == 20 and report["steps"][9]["action"] == "retrain"
    assert report["steps"][11]["suppressed"] == ["shift:cooldown"]
    history.write_text("[{\"window_end\": \"yesterday\"}]")
    result = CliRunner().invoke(policy_group, ["backtest", "--policy", str(policy), "--history", str(history)])
    assert result.exit_code == 2 and "not an ISO-8601 time" in result.output


def test_with_decision_is_the_record_built_anew() -> None:
    (check,) = checks_from_rows(rows(1))[1]
    decided = check.with_decision("retrain", "shift", "dry-run")
    built = CheckRecord(check.window_id, check.window_end, dict(check.metrics), "retrain", "shift",
                        check.decided_at, "dry-run")
    assert decided == built and decided._encoded == built._encoded and decided._seconds == built._seconds
    assert History((decided,)).digest() == History((built,)).digest() != History((check,)).digest()
    assert check.action == "none"                   # the original is untouched
    with pytest.raises(InputError, match="unknown action 'redeploy'"):
        check.with_decision("redeploy", None, "enforce")
    with pytest.raises(InputError, match="unknown mode"):
        check.with_decision("none", None, "shadow")
