"""History.append: a replay that extends one History check by check must decide exactly as if every
step's History were built from scratch (records, explanations and ids byte for byte), also when an
older History of the chain is evaluated again later or a second History branches off an older one
(the memo it shares may then hold entries for checks the branch does not have)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from drift_decider.errors import InputError
from drift_decider.policy import CheckRecord, History, evaluate, parse_policy
from drift_decider.policy.history import canonical_json
from policy_support import T0
from test_policy_golden import metrics, policy_text

KEEP_FIRING = parse_policy("""\
apiVersion: drift-decider/v1
kind: Policy
metadata: {name: keep, version: "1"}
rules:
  - {id: kept, action: retrain, for: 2, keep_firing_for: 2, when: 'knn_jaccard < 0.5'}
  - {id: chart, action: recalibrate, cooldown: 2d,
     when: {metric: scores.mean_shift, cusum: {target: 0, sigma: 0.01, side: both}}}
  - {id: trend, action: refresh-index, for: 3,
     when: {metric: norm_ratio, slope: {window: 4}, op: gt, value: 0}}
""")


def policies() -> list:
    rnd = random.Random(7)
    return [parse_policy(policy_text(rnd, mode)) for mode in ("enforce", "enforce", "dry-run")] + [KEEP_FIRING]


def text(decision) -> str:
    return canonical_json(decision.to_dict()) + decision.explain()


def same_as_fresh(policy, values, history: History, now) -> bool:
    """Whether deciding on ``history`` gives what a History of the same checks, sharing nothing, gives."""
    return text(evaluate(policy, values, history, now)) == text(evaluate(policy, values, History(history.checks), now))


@pytest.mark.parametrize("policy", policies(), ids=lambda p: p.name + "-" + p.mode)
def test_replay_by_append_decides_as_from_scratch(policy) -> None:
    rnd = random.Random(11)
    chain, now, earlier, seen = History(), T0, [], []
    for step in range(80):
        # mostly a day apart; now and then a check decided before the one before it (clock skew)
        now = now + timedelta(hours=rnd.choice((24, 24, 24, 30, -20)))
        values = metrics(rnd, 0.05)
        assert same_as_fresh(policy, values, chain, now), f"step {step}"
        decision = evaluate(policy, values, chain, now)
        seen.append(decision.action)
        if step % 9 == 8:       # an older History of the chain, whose memo has grown since, decides again
            assert same_as_fresh(policy, values, earlier[step // 2], now), f"step {step}, History {step // 2}"
        earlier.append(chain)
        # mostly the decision's own record; now and then a record that differs from what was decided
        # (other values, a time days later), so what held at the decision must not carry over
        recorded = {**values, "knn_jaccard": 1.0 - values.get("knn_jaccard", 0.5)} if step % 7 == 3 else values
        decided_at = now + timedelta(days=3) if step % 11 == 5 else now
        chain = chain.append(CheckRecord(f"s{step}", now, recorded, decision.action, decision.rule_id, decided_at,
                                         decision.mode))
    assert len(set(seen)) >= 2                # the replay reaches more than one outcome


@pytest.mark.parametrize("policy", policies(), ids=lambda p: p.name + "-" + p.mode)
def test_histories_branching_off_one_history_do_not_share_their_newest_check(policy) -> None:
    rnd = random.Random(5)
    base = History()
    for i in range(12):
        now = T0 + timedelta(days=i)
        base = base.append(CheckRecord(f"b{i}", now, metrics(rnd, 0.05), rnd.choice(("none", "retrain")), None,
                                       now))
    evaluate(policy, metrics(rnd, 0.05), base, T0 + timedelta(days=12))
    branches = [base.append(CheckRecord(f"x{k}", T0 + timedelta(days=12), metrics(rnd, 0.05),
                                        ("none", "retrain", "recalibrate")[k], None, T0 + timedelta(days=12)))
                for k in range(3)]
    for _ in range(2):                      # each branch in turn, then again after the others
        for branch in branches:
            for day in (13, 14):
                values, now = metrics(rnd, 0.05), T0 + timedelta(days=day)
                assert same_as_fresh(policy, values, branch, now)


def test_append_takes_a_check_record() -> None:
    with pytest.raises(InputError, match="CheckRecord"):
        History().append({"window_end": T0})


def test_histories_of_one_chain_each_keep_their_own_checks() -> None:
    records = [CheckRecord(f"c{i}", T0 + timedelta(days=i), {"knn_jaccard": 0.5}) for i in range(4)]
    first = History(records[:2])
    longer = first.append(records[2])
    branch = first.append(records[3])                   # appended to an older History: copies the checks
    assert first.checks == tuple(records[:2]) and len(first) == 2
    assert longer.checks == tuple(records[:3]) and branch.checks == (*records[:2], records[3])
    assert longer == History(records[:3]) and longer != branch
    assert longer.append(records[3]).checks == tuple(records) and longer.checks == tuple(records[:3])
