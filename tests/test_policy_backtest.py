"""policy backtest: replaying recorded checks decides exactly as deciding them one by one would, with
the policy's own decisions (not the recorded ones) as the history that cooldowns and ``for`` read."""

from __future__ import annotations

import json
import pickle
from copy import deepcopy
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from drift_decider.cli.policy_commands import policy_group
from drift_decider.errors import InputError
from drift_decider.policy import CheckRecord, PolicyState, parse_policy
from drift_decider.policy.backtest import recorded_from_rows, replay, summary
from drift_decider.policy.replay import decided_record
from policy_support import T0, decide

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
    before, recorded = recorded_from_rows(rows())
    steps = list(replay(POLICY, recorded, history=before))
    history: list[CheckRecord] = []
    for entry, step in zip(recorded, steps):
        check = entry.check
        expected = decide(POLICY, check.metrics, history, check.decided_at,
                            context={"window_id": check.window_id, "version": "1"})
        assert step.decision.to_dict() == expected.to_dict()
        history.append(CheckRecord(check.window_id, check.window_end, check.metrics, expected.action,
                                   expected.rule_id, check.decided_at, "enforce"))
    actions = [step.decision.action for step in steps]
    # sustained from day 9; the 5-day cooldown of the *replayed* retrain holds its repeats back to day
    # 14 and 19; the norm-ratio trend (from day 15) recalibrates in between
    assert actions == ["none"] * 9 + ["retrain"] + ["none"] * 4 + ["retrain"] + ["recalibrate"] * 4 + ["retrain"]
    assert steps[8].decision.suppressed_reasons == {("shift", "not-sustained")}
    assert steps[11].decision.suppressed_reasons == {("shift", "cooldown")}
    assert summary(step.to_dict() for step in steps) == {
        "checks": 20, "actions": {"none": 13, "recalibrate": 4, "retrain": 3}, "recorded_actions": {"none": 20},
        "same": 13, "same_decision_id": 0}


def test_a_dry_run_policy_is_replayed_as_if_in_charge() -> None:
    dry = parse_policy(POLICY_TEXT.replace("rules:", "mode: dry-run\nrules:"))
    before, recorded = recorded_from_rows(rows())
    assert [s.decision.action for s in replay(dry, recorded, history=before)] == \
        [s.decision.action for s in replay(POLICY, recorded, history=before)]


def recorded_by(policy) -> list[dict]:
    """rows() as live checks under ``policy`` record them: each decided with the context model,
    version, window id on the history of the decisions before it, recorded in the policy's mode."""
    data, history = rows(), []
    for row in data:
        check = CheckRecord.from_dict(row)
        decision = decide(policy, check.metrics, history, check.decided_at,
                          context={"model": "recs", "version": "1", "window_id": check.window_id})
        row.update(model="recs", action=decision.action, rule_id=decision.rule_id, mode=decision.mode,
                   decision_id=decision.decision_id)
        history.append(CheckRecord(check.window_id, check.window_end, check.metrics, decision.action,
                                   decision.rule_id, check.decided_at, decision.mode))
    return data


def test_the_recording_policy_gives_back_every_recorded_decision_id() -> None:
    data = recorded_by(POLICY)
    totals = summary(step.to_dict() for step in replay(POLICY, recorded_from_rows(data)[1]))
    assert totals["same"] == totals["same_decision_id"] == 20 and totals["actions"] == totals["recorded_actions"]
    data[3]["version"] = "2"                            # a version the check of day 3 was not made for
    assert summary(s.to_dict() for s in replay(POLICY, recorded_from_rows(data[3:4])[1]))["same_decision_id"] == 0


def test_since_takes_earlier_checks_as_recorded() -> None:
    data = rows()
    data[9]["action"] = "retrain"                  # recorded: retrained on day 9
    before, recorded = recorded_from_rows(data, T0 + timedelta(days=10))
    assert len(before) == 10 and recorded[0].check.window_id == "d10"
    steps = list(replay(POLICY, recorded, history=before))
    # the recorded retrain of day 9 keeps the replayed days 10-13 in cooldown
    assert [s.decision.action for s in steps[:4]] == ["none"] * 4
    assert steps[4].decision.action == "retrain"


def test_checks_decided_together_do_not_see_each_other() -> None:
    """As a live check reads only windows that ended before its own: two rows of one time are both
    decided on the history before that time."""
    data = rows(12)
    data[10]["window_end"] = data[9]["window_end"]
    before, recorded = recorded_from_rows(data)
    steps = list(replay(POLICY, recorded, history=before))
    assert steps[9].decision.action == steps[10].decision.action == "retrain"    # d10 does not see d9's
    assert steps[10].decision.history_checks == steps[9].decision.history_checks == 9
    assert steps[11].decision.history_checks == 11


def test_as_policy_mode_reproduces_a_dry_run_policys_record() -> None:
    dry = parse_policy(POLICY_TEXT.replace("rules:", "mode: dry-run\nrules:"))
    data = recorded_by(dry)
    replayed = [s.to_dict() for s in replay(dry, recorded_from_rows(data)[1], as_enforced=False)]
    assert summary(replayed)["same_decision_id"] == len(data)
    assert summary(s.to_dict() for s in replay(dry, recorded_from_rows(data)[1]))["same"] < len(data)


def test_decisions_pickle_and_deep_copy() -> None:
    _, recorded = recorded_from_rows(rows())
    steps = list(replay(POLICY, recorded))
    for step in (steps[9], steps[15]):
        for copy in (pickle.loads(pickle.dumps(step)), deepcopy(step)):
            assert copy.to_dict() == step.to_dict() and copy.decision.explain() == step.decision.explain()


def test_explain_and_backtest_read_the_same_history_rows(tmp_path: Path) -> None:
    policy, history, metrics = tmp_path / "p.yaml", tmp_path / "h.json", tmp_path / "m.json"
    policy.write_text(POLICY_TEXT)
    metrics.write_text(json.dumps({"knn_jaccard": 0.3}))
    for text in (json.dumps(rows(12)), json.dumps({"checks": rows(12)})):
        history.write_text(text)
        for command in (["explain", "--metrics", str(metrics), "--now", "2026-04-01T00:00:00Z"], ["backtest"]):
            result = CliRunner().invoke(policy_group, [*command, "--policy", str(policy), "--history", str(history)])
            assert result.exit_code == 0, result.output


def test_rows_must_be_one_version_oldest_first_and_well_formed() -> None:
    data = rows(3)
    data[1], data[2] = data[2], data[1]
    with pytest.raises(InputError, match="entry 2 .* decided before entry 1"):
        recorded_from_rows(data)
    data = rows(3)
    data[1]["version"] = "2"
    with pytest.raises(InputError, match="mixes checks of versions 1, 2"):
        recorded_from_rows(data)
    with pytest.raises(InputError, match="unknown keys"):
        recorded_from_rows([{**rows(1)[0], "extra": 1}])
    with pytest.raises(InputError, match="JSON list"):
        recorded_from_rows({"not": "a list"})
    with pytest.raises(InputError, match="entry 0: expected a mapping"):
        recorded_from_rows([3])
    (untagged,) = recorded_from_rows([{**rows(1)[0], "mode": None}])[1]   # a run without a mode tag
    assert untagged.check.mode == "enforce"


def test_cli_table_json_and_errors(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY_TEXT)
    history = tmp_path / "h.json"
    history.write_text(json.dumps(rows()))
    result = CliRunner().invoke(policy_group, ["backtest", "--policy", str(policy), "--history", str(history)])
    assert result.exit_code == 0, result.output
    assert "d9" in result.output and "retrain  *" in result.output
    assert "over 20 checks (after 0 recorded)" in result.output and "same decision on 13" in result.output
    report = json.loads(CliRunner().invoke(policy_group, ["backtest", "--policy", str(policy), "--history",
                                                          str(history), "--json"]).output)
    assert report["summary"]["checks"] == 20 and report["steps"][9]["action"] == "retrain"
    assert report["steps"][9]["recorded"] == {"action": "none", "rule_id": None, "mode": "enforce",
                                              "decision_id": "id9"}
    assert report["steps"][11]["suppressed"] == ["shift:cooldown"]
    result = CliRunner().invoke(policy_group, ["backtest", "--policy", str(policy), "--history", str(history),
                                               "--since", "2030-01-01"])
    assert result.exit_code == 0 and "no check to replay (20 recorded before --since)" in result.output
    history.write_text("[]")
    result = CliRunner().invoke(policy_group, ["backtest", "--policy", str(policy), "--history", str(history)])
    assert result.exit_code == 0 and "no check to replay: the history has no checks" in result.output
    history.write_text("[{\"window_end\": \"yesterday\"}]")
    result = CliRunner().invoke(policy_group, ["backtest", "--policy", str(policy), "--history", str(history)])
    assert result.exit_code == 2 and "not an ISO 8601 time" in result.output


def test_the_decided_record_is_the_record_built_anew() -> None:
    (entry,) = recorded_from_rows(rows(9)[8:])[1]            # a day whose neighbourhoods collapsed
    check = entry.check
    policy = parse_policy(POLICY_TEXT.replace("for: 2, ", ""))
    decision = decide(policy, check.metrics, (), check.decided_at)
    decided = decided_record(check, decision, "dry-run")
    built = CheckRecord(check.window_id, check.window_end, dict(check.metrics), "retrain", "shift",
                        check.decided_at, "dry-run")
    assert decided == built and check.action == "none"          # the original is untouched

    def digest(record: CheckRecord) -> str:
        return PolicyState().after(policy, record).digest

    assert digest(decided) == digest(built) != digest(check)
