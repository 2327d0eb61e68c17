"""Unit tests for policies, in the spirit of ``promtool test rules`` and ``opa test``.

A test file names a policy and lists scenarios. Each scenario is a series of checks (metric
values per step, ``defaults`` shared by all steps), optional prior history (e.g. an action taken
last week), and expectations at chosen steps. Steps run in order through policy.replay, as a
backtest's checks do: each step's decision joins the history of the next, as the tracking layer
would record it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from drift_decider.errors import DriftDeciderError, PolicyError
from drift_decider.policy.decision import Decision
from drift_decider.policy.yaml_fields import Fields, type_name, unknown_metric
from drift_decider.inputs.times import parse_time
from drift_decider.policy.records import ACTIONS, MODES, CheckRecord, clean_metrics
from drift_decider.policy.model import Policy
from drift_decider.policy.replay import decide_series
from drift_decider.policy.load import API_VERSION, load_policy
from drift_decider.policy.state import PolicyState
from drift_decider.policy.located_yaml import Located, LocatedList, load_yaml, read_text

REASONS = ("not-sustained", "cooldown", "outranked")
MAX_STEPS = 10_000
DEFAULT_START = datetime(2026, 1, 5, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Expectation:
    action: str
    rule: str | None           # None: not checked
    suppressed: frozenset[tuple[str, str]] | None    # None: not checked; else exact (rule, reason) set
    pos: str
    kept_firing: bool | None = None     # None: not checked; else whether the winner fired by keep_firing_for


@dataclass(frozen=True)
class Step:
    metrics: dict[str, float | None]
    at: datetime | None
    repeat: int
    expect: Expectation | None


@dataclass(frozen=True)
class Scenario:
    name: str
    pos: str
    start: datetime
    interval: timedelta
    context: dict[str, str]
    defaults: dict[str, float | None]
    history: tuple[CheckRecord, ...]
    steps: tuple[Step, ...]


@dataclass
class Failure:
    scenario: str
    step: int
    at: datetime
    location: str
    lines: list[str]
    trace: str

    def render(self) -> str:
        head = f"{self.location}: FAIL {self.scenario!r} step {self.step} ({self.at.isoformat()})"
        trace = "\n".join("      " + line for line in self.trace.splitlines())
        return "\n".join([head] + ["    " + line for line in self.lines] + ["    trace:", trace])

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "step": self.step, "location": self.location,
                "differences": self.lines}


@dataclass
class TestFileResult:
    path: str
    policy: str
    scenarios: int = 0
    expectations: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path, "policy": self.policy, "ok": self.ok, "scenarios": self.scenarios,
                "expectations": self.expectations, "failures": [f.to_dict() for f in self.failures]}


def run_test_file(path: str | Path) -> TestFileResult:
    """Load a test file and its policy, run every scenario; PolicyError for a broken file."""
    path = Path(path)
    data = load_yaml(read_text(path), str(path))
    doc = Fields(data, f"{path}:1:1", "policy test file",
                 ("apiVersion", "kind", "policy", "defaults", "tests"),
                 ("apiVersion", "kind", "policy", "tests"))
    if doc.raw("apiVersion") != API_VERSION:
        raise doc.fail("apiVersion", f"expected {API_VERSION!r}")
    if doc.raw("kind") != "PolicyTest":
        raise doc.fail("kind", f"expected 'PolicyTest', got {doc.raw('kind')!r}")
    policy_path = path.parent / doc.string("policy")
    if not policy_path.is_file():
        raise doc.fail("policy", f"policy file {str(policy_path)!r} does not exist")
    policy = load_policy(policy_path)
    tests = doc.raw("tests")
    if not isinstance(tests, LocatedList) or not tests:
        raise doc.fail("tests", "expected a non-empty list of scenarios")
    result = TestFileResult(str(path), str(policy_path))
    shared = _metrics(doc, "defaults", allow_null=False)
    for node, where in zip(tests, tests.item_pos):
        scenario = _scenario(node, where, policy, shared)
        result.scenarios += 1
        result.expectations += sum(1 for s in scenario.steps if s.expect)
        result.failures += run_scenario(policy, scenario)
    return result


def run_scenario(policy: Policy, scenario: Scenario) -> list[Failure]:
    """Play the steps in order, each decision joining the history of the next, and compare expectations."""
    checks: list[tuple[CheckRecord, dict[str, str]]] = []
    expected: list[Expectation | None] = []
    now = scenario.start
    for step in scenario.steps:
        for repetition in range(step.repeat):
            number = len(checks) + 1
            if step.at is not None and repetition == 0:
                now = step.at
            elif number > 1:
                try:
                    now = now + scenario.interval
                except OverflowError:   # 10,000 steps of up to 3650d pass the year 9999
                    raise PolicyError(f"test {scenario.name!r}: step {number} falls after the year 9999; use a "
                                      f"shorter interval or fewer steps", scenario.pos) from None
            metrics = {k: v for k, v in {**scenario.defaults, **step.metrics}.items() if v is not None}
            checks.append((CheckRecord(f"step-{number}", now, metrics, decided_at=now), scenario.context))
            expected.append(step.expect if repetition == step.repeat - 1 else None)
    failures: list[Failure] = []
    state = PolicyState().after_all(policy, scenario.history)
    for number, (expect, decided) in enumerate(zip(expected, decide_series(policy, checks, state)), 1):
        lines = [] if expect is None else _differences(expect, decided.decision)
        if lines:
            failures.append(Failure(scenario.name, number, decided.check.decided_at, expect.pos, lines,
                                    decided.decision.explain()))
    return failures


def _differences(expect: Expectation, decision: Decision) -> list[str]:
    lines = []
    if decision.action != expect.action:
        lines.append(f"action:     expected {expect.action:<16} got {decision.action}")
    if expect.rule is not None and decision.rule_id != expect.rule:
        lines.append(f"rule:       expected {expect.rule:<16} got {decision.rule_id or '-'}")
    if expect.kept_firing is not None and decision.kept_firing != expect.kept_firing:
        lines.append(f"kept firing: expected {str(expect.kept_firing).lower():<15} "
                     f"got {str(decision.kept_firing).lower()}")
    if expect.suppressed is not None:
        got = decision.suppressed_reasons
        for rule, reason in sorted(expect.suppressed - got):
            lines.append(f"suppressed: missing  {rule}: {reason}")
        for rule, reason in sorted(got - expect.suppressed):
            lines.append(f"suppressed: extra    {rule}: {reason}")
    return lines


def _scenario(node: Any, where: str, policy: Policy, shared: dict[str, float]) -> Scenario:
    f = Fields(node, where, "test", ("name", "start", "interval", "context", "defaults", "history", "steps"),
               ("name", "steps"))
    name = f.string("name")
    f.what = f"test {name!r}"
    start = _time(f, "start") if f.has("start") else DEFAULT_START
    interval = f.duration_seconds("interval")
    context = f.raw("context", Located())
    if not isinstance(context, dict) or not all(isinstance(v, (str, int, float)) for v in context.values()):
        raise f.fail("context", "expected a mapping of name to string")
    steps_node = f.raw("steps")
    if not isinstance(steps_node, LocatedList) or not steps_node:
        raise f.fail("steps", "expected a non-empty list of steps")
    steps = tuple(_step(item, pos, policy) for item, pos in zip(steps_node, steps_node.item_pos))
    if sum(s.repeat for s in steps) > MAX_STEPS:
        raise f.fail("steps", f"more than {MAX_STEPS} steps")
    if not any(s.expect for s in steps):      # it would pass whatever the policy decides
        raise f.fail("steps", "no step has an expect: give at least one step `expect: {action: ...}`")
    history_node = f.raw("history", LocatedList())
    if not isinstance(history_node, list):
        raise f.fail("history", f"expected a list of prior checks, got {type_name(history_node)}")
    history = tuple(_prior(item, pos, i) for i, (item, pos) in
                    enumerate(zip(history_node, getattr(history_node, "item_pos", []))))
    return Scenario(name=name, pos=where, start=start, interval=timedelta(seconds=interval or 7 * 86400),
                    context={str(k): str(v) for k, v in context.items()},
                    defaults={**shared, **_metrics(f, "defaults", allow_null=True)}, history=history,
                    steps=steps)


def _step(node: Any, where: str, policy: Policy) -> Step:
    f = Fields(node, where, "step", ("metrics", "at", "repeat", "expect"))
    expect = None
    if f.has("expect"):
        e = f.sub("expect", "expect", ("action", "rule", "suppressed", "kept_firing"), ("action",))
        action = e.choice("action", ACTIONS)
        rule = e.string("rule")
        if rule is not None and rule not in {r.id for r in policy.rules}:
            raise e.fail("rule", f"policy has no rule {rule!r}")
        expect = Expectation(action, rule, _suppressed(e, policy), e.pos,
                             _kept_firing(e, policy, action, rule))
    return Step(metrics=_metrics(f, "metrics", allow_null=True), at=_time(f, "at") if f.has("at") else None,
                repeat=f.integer("repeat", 1, low=1, high=MAX_STEPS), expect=expect)


def _kept_firing(e: Fields, policy: Policy, action: str, rule: str | None) -> bool | None:
    """``kept_firing: true`` asserts the winner fired by keep_firing_for; only possible for such a rule."""
    if not e.has("kept_firing"):
        return None
    value = e.raw("kept_firing")
    if not isinstance(value, bool):
        raise e.fail("kept_firing", f"expected true or false, got {type_name(value)}")
    if value and action == "none":
        raise e.fail("kept_firing", "a 'none' decision has no winning rule to be kept firing")
    keeping = {r.id for r in policy.rules if r.keep_firing_for}
    if value and (rule not in keeping if rule is not None else not keeping):
        owner = f"rule {rule!r}" if rule else "the policy"
        raise e.fail("kept_firing", f"{owner} has no keep_firing_for")
    return value


def _suppressed(e: Fields, policy: Policy) -> frozenset[tuple[str, str]] | None:
    if not e.has("suppressed"):
        return None
    node = e.raw("suppressed")
    if not isinstance(node, LocatedList):
        raise e.fail("suppressed", f"expected a list of {{rule, reason}}, got {type_name(node)}")
    out = set()
    rule_ids = {r.id for r in policy.rules}
    for item, pos in zip(node, node.item_pos):
        s = Fields(item, pos, "suppressed entry", ("rule", "reason"), ("rule", "reason"))
        rule = s.string("rule")
        if rule not in rule_ids:
            raise s.fail("rule", f"policy has no rule {rule!r}")
        out.add((rule, s.choice("reason", REASONS)))
    return frozenset(out)


def _prior(node: Any, where: str, index: int) -> CheckRecord:
    f = Fields(node, where, "history entry", ("at", "action", "mode", "rule", "metrics"), ("at",))
    at = _time(f, "at")
    return CheckRecord(window_id=f"prior-{index + 1}", window_end=at,
                       metrics=_metrics(f, "metrics", allow_null=False),
                       action=f.choice("action", ACTIONS, "none"), rule_id=f.string("rule"), decided_at=at,
                       mode=f.choice("mode", MODES, "enforce"))


def _metrics(f: Fields, key: str, *, allow_null: bool) -> dict[str, Any]:
    node = f.raw(key, Located())
    if not isinstance(node, dict):
        raise f.fail(key, f"expected a mapping of metric name to number, got {type_name(node)}")
    out: dict[str, Any] = {}
    for name, value in node.items():
        problem = unknown_metric(name)
        if problem:
            raise PolicyError(problem, node.key_pos.get(name, f.at(key)))
        if value is None and allow_null:
            out[name] = None          # null removes a default: the metric is missing at this step
            continue
        try:
            out.update(clean_metrics({name: value}, key))
        except DriftDeciderError as exc:
            raise PolicyError(str(exc), node.value_pos.get(name, f.at(key))) from None
    return out


def _time(f: Fields, key: str) -> datetime:
    try:
        return parse_time(f.raw(key), key)
    except DriftDeciderError as exc:
        raise f.fail(key, str(exc)) from None
