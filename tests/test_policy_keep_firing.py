"""keep_firing_for: a sustained match stays matched for N further checks after its condition stops holding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drift_decider.errors import PolicyError
from drift_decider.policy import lint, parse_policy
from drift_decider.policy.policy_tests import run_test_file
from policy_support import T0, decide, weekly

DATA = Path(__file__).parent / "data"
BAD, GOOD = {"knn_jaccard": 0.4}, {"knn_jaccard": 0.9}


def make(extra: str, when: str = "'knn_jaccard < 0.5'") -> object:
    extra = f", {extra}" if extra else ""
    return parse_policy("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: t, version: '1'}\n"
                        f"rules:\n  - {{id: r, action: retrain, when: {when}{extra}}}\n", "k.yaml")


def rule_record(decision) -> dict:
    (record,) = decision.to_dict()["rules"]
    return record


def test_a_match_is_kept_for_n_checks_after_its_condition_last_held() -> None:
    p = make("keep_firing_for: 2")
    first = decide(p, GOOD, weekly([BAD]), T0)
    assert (first.action, first.kept_firing) == ("retrain", True)
    assert rule_record(first)["kept_firing"] == {"window_id": "w0", "decided_at": "2026-02-23T00:00:00Z",
                                                 "checks_ago": 1}
    assert "kept firing: last held at window w0" in first.explanation
    assert "kept firing: last held at window w0 (2026-02-23T00:00:00Z), 1 check ago" in first.explain()
    second = decide(p, GOOD, weekly([BAD, GOOD]), T0)
    assert second.action == "retrain" and rule_record(second)["kept_firing"]["checks_ago"] == 2
    assert decide(p, GOOD, weekly([BAD, GOOD, GOOD]), T0).action == "none"      # 3 checks ago: over


def test_without_keep_firing_the_same_inputs_do_not_fire_and_records_have_no_kept_key() -> None:
    d = decide(make(""), GOOD, weekly([BAD]), T0)
    assert d.action == "none" and not d.kept_firing and "kept_firing" not in rule_record(d)
    held_now = decide(make("keep_firing_for: 2"), BAD, weekly([BAD]), T0)    # holds now: not a kept match
    assert held_now.action == "retrain" and not held_now.kept_firing
    assert "kept_firing" not in rule_record(held_now)


def test_only_checks_where_the_condition_truly_held_count_a_kept_match_never_extends_itself() -> None:
    p = make("keep_firing_for: 1")
    checks = [BAD]
    actions = []
    for _ in range(3):                  # good checks after one bad one: kept once, then released
        d = decide(p, GOOD, weekly(checks), T0)
        actions.append(d.action)
        checks.append(GOOD)
    assert actions == ["retrain", "none", "none"]


def test_the_earlier_hold_must_have_passed_for() -> None:
    p = make("for: 2, keep_firing_for: 3")
    assert decide(p, GOOD, weekly([GOOD, BAD]), T0).action == "none"           # held once: never sustained
    d = decide(p, GOOD, weekly([BAD, BAD, GOOD]), T0)                          # sustained at w1, 2 ago
    assert d.action == "retrain" and rule_record(d)["kept_firing"]["window_id"] == "w1"
    short = make("for: 3, keep_firing_for: 3")                                   # w1 had too little history
    assert decide(short, GOOD, weekly([BAD, BAD, GOOD]), T0).action == "none"


def test_a_condition_back_before_for_is_met_again_is_still_kept_not_reset() -> None:
    """Prometheus-like: the alert never resolved within the keep window, so ``for`` is not asked anew."""
    with_keep = decide(make("for: 2, keep_firing_for: 2"), BAD, weekly([BAD, BAD, GOOD]), T0)
    assert with_keep.action == "retrain" and with_keep.kept_firing
    without = decide(make("for: 2"), BAD, weekly([BAD, BAD, GOOD]), T0)
    assert without.action == "none" and without.suppressed[0].reason == "not-sustained"


def test_missing_data_now_keeps_a_recent_sustained_match() -> None:
    d = decide(make("keep_firing_for: 1"), {}, weekly([BAD]), T0)
    assert d.action == "retrain" and d.kept_firing
    assert d.to_dict()["conditions"][0]["outcome"] == "unknown"       # the trace still says what holds now
    assert decide(make(""), {}, weekly([BAD]), T0).rules[0].status == "unknown"


def test_kept_matches_obey_cooldown_and_say_so_when_suppressed() -> None:
    p = make("keep_firing_for: 2, cooldown: 10d")
    d = decide(p, GOOD, weekly([BAD], ["retrain"]), T0)
    assert d.action == "none"
    (entry,) = d.to_dict()["suppressed"]
    assert entry["reason"] == "cooldown" and entry["kept_firing"]["window_id"] == "w0"
    assert "SUPPRESSED, kept firing: last held at window w0" in d.explain()
    assert decide(p, GOOD, weekly([BAD, GOOD], ["retrain", "none"]), T0).action == "retrain"   # 14d > 10d


def test_kept_match_can_be_outranked_and_a_held_rule_can_outrank_it() -> None:
    p = parse_policy("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: t, version: '1'}\nrules:\n"
                     "  - {id: kept, action: retrain, priority: 2, keep_firing_for: 1, "
                     "when: 'knn_jaccard < 0.5'}\n"
                     "  - {id: now, action: refresh-index, priority: 1, when: 'index.recall_at_k < 0.9'}\n")
    d = decide(p, {**GOOD, "index.recall_at_k": 0.5}, weekly([BAD]), T0)
    assert (d.rule_id, d.kept_firing) == ("kept", True)
    assert {(r.rule_id, r.reason) for r in d.suppressed} == {("now", "outranked")}
    d = decide(p, {**GOOD, "index.recall_at_k": 0.5}, weekly([GOOD]), T0)
    assert (d.rule_id, d.kept_firing) == ("now", False)


def test_trend_conditions_are_recomputed_on_the_earlier_check() -> None:
    """A slope rule kept firing: its earlier hold is the slope over the checks before that one."""
    p = make("keep_firing_for: 1", "{metric: knn_jaccard, slope: {window: 3}, op: lt, value: -0.01}")
    falling = [{"knn_jaccard": v} for v in (0.9, 0.8, 0.7)]                      # -0.1/week at w2
    assert decide(p, {"knn_jaccard": 0.8}, weekly(falling), T0).kept_firing    # rising now
    flat = [{"knn_jaccard": v} for v in (0.9, 0.9, 0.9)]
    assert decide(p, {"knn_jaccard": 0.6}, weekly(flat), T0).action == "retrain"           # falls now
    assert decide(p, {"knn_jaccard": 0.95}, weekly(flat), T0).action == "none"


@pytest.mark.parametrize("value, message", [
    ("3d", "keep_firing_for: counts checks, like 'for': expected an integer, got '3d'"),
    ("-1", "keep_firing_for: -1 is outside [0, 1000]"),
    ("1001", "keep_firing_for: 1001 is outside [0, 1000]"),
    ("1.5", "keep_firing_for: expected an integer, got number"),
    ("true", "keep_firing_for: expected an integer, got boolean"),
])
def test_bad_values_are_located_errors(value: str, message: str) -> None:
    text = ("apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: t, version: '1'}\nrules:\n"
            "  - id: r\n    action: retrain\n    when: 'knn_jaccard < 0.5'\n"
            f"    keep_firing_for: {value}\n")
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "k.yaml")
    assert str(err.value) == f"k.yaml:8:22: rule 'r': {message}"


def test_a_rule_kept_longer_than_the_rule_ahead_of_it_is_not_shadowed() -> None:
    def warnings(narrow_keep: int) -> list[str]:
        return [str(w) for w in lint(parse_policy(
            "apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: t, version: '1'}\nrules:\n"
            "  - {id: broad, action: retrain, priority: 2, keep_firing_for: 1, when: 'knn_jaccard < 0.6'}\n"
            f"  - {{id: narrow, action: retrain, priority: 1, keep_firing_for: {narrow_keep}, "
            "when: 'knn_jaccard < 0.5'}\n", "k.yaml"))]
    assert len(warnings(1)) == 1 and "'narrow' can never fire" in warnings(1)[0]
    assert warnings(2) == []


def test_policy_test_file_scenarios_pass_and_a_wrong_kept_expectation_fails(tmp_path: Path) -> None:
    result = run_test_file(DATA / "keep-firing.test.yaml")
    assert result.ok, [f.render() for f in result.failures]
    assert (result.scenarios, result.expectations) == (3, 10)
    wrong = (DATA / "keep-firing.test.yaml").read_text().replace("kept_firing: true", "kept_firing: false", 1)
    (tmp_path / "keep-firing.yaml").write_text((DATA / "keep-firing.yaml").read_text())
    (tmp_path / "wrong.test.yaml").write_text(wrong)
    failed = run_test_file(tmp_path / "wrong.test.yaml")
    (failure,) = failed.failures
    assert "kept firing: expected false" in failure.render() and "got true" in failure.render()


@pytest.mark.parametrize("expect, message", [
    ("{action: none, kept_firing: true}", "a 'none' decision has no winning rule to be kept firing"),
    ("{action: refresh-index, rule: index, kept_firing: true}", "rule 'index' has no keep_firing_for"),
    ("{action: retrain, kept_firing: yes-please}", "expected true or false, got string"),
])
def test_policy_test_file_kept_firing_expectations_are_checked_at_load(tmp_path: Path, expect: str,
                                                                      message: str) -> None:
    (tmp_path / "keep-firing.yaml").write_text((DATA / "keep-firing.yaml").read_text())
    (tmp_path / "bad.test.yaml").write_text(
        "apiVersion: drift-decider/v1\nkind: PolicyTest\npolicy: keep-firing.yaml\n"
        f"tests:\n  - name: x\n    steps:\n      - expect: {expect}\n")
    with pytest.raises(PolicyError) as err:
        run_test_file(tmp_path / "bad.test.yaml")
    assert message in str(err.value) and "bad.test.yaml:7:" in str(err.value)


def alert_states(holds: list[bool], sustain: int, keep: int) -> list[str]:
    """Prometheus-style alert states after each check, stepped one check at a time: pending until
    ``for`` consecutive holds, then firing; a firing alert whose condition stops holding is kept
    for ``keep`` checks; holding again while firing or kept fires at once."""
    states, state, run, quiet = [], "inactive", 0, 0
    for held in holds:
        run = run + 1 if held else 0
        if held:
            state = "firing" if state in ("firing", "kept") or run >= sustain else "pending"
        elif state in ("firing", "kept"):
            quiet = 1 if state == "firing" else quiet + 1
            state = "kept" if quiet <= keep else "inactive"
        else:
            state = "inactive"
        states.append(state)
    return states


@pytest.mark.parametrize("sustain, keep", [(1, 1), (2, 1), (3, 2), (2, 3), (1, 4)])
def test_decisions_follow_a_step_by_step_alert_state_machine(sustain: int, keep: int) -> None:
    """Random flapping and missing data: the decision at each check equals the state machine's
    verdict on that check (firing or kept: act), and a kept match is flagged as kept."""
    rng = np.random.default_rng(100 * sustain + keep)
    p = make(f"for: {sustain}, keep_firing_for: {keep}")
    seen = set()
    for _ in range(40):
        n = int(rng.integers(1, 25))
        values = [BAD if r < 0.55 else GOOD if r < 0.9 else {} for r in rng.random(n)]
        states = alert_states([v is BAD for v in values], sustain, keep)
        history = weekly(values[:-1])
        d = decide(p, values[-1], history, T0)
        state = states[-1]
        assert d.action == ("retrain" if state in ("firing", "kept") else "none"), (values, states)
        fired_by_continuity = state == "firing" and not all(v is BAD for v in values[-sustain:])
        assert d.kept_firing == (state == "kept" or fired_by_continuity)
        seen.add(state)
    assert {"firing", "kept", "inactive"} <= seen
