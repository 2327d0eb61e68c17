"""Hostile policy files: every one either validates and then decides without an unexpected exception,
or is refused with exit 2 at file:line:col; none takes more than 2 s or 200 MB (issue 16: #5, #6, #12,
#13). The fuzz test is seeded, so a failure reproduces."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from drift_decider.measure.metric_names import metric_keys
from drift_decider.cli.main import cli
from drift_decider.policy import ACTIONS, CheckRecord, PolicyState, evaluate, load_policy

SHIPPED_POLICY = Path(__file__).resolve().parents[1] / "policies" / "recommender-default.yaml"

HEADER = "apiVersion: drift-decider/v1\nkind: Policy\nmetadata: {name: hostile, version: '1'}\n"
NOW = datetime(2026, 3, 2, tzinfo=timezone.utc)
METRICS = sorted(metric_keys())
LOCATED = re.compile(r"^(?:error: )?(?P<file>.+):(?P<line>\d+):(?P<col>\d+): ", re.M)
MAX_SECONDS = 2.0
MAX_BYTES = 200 * 2**20


def rule(extra: str = "", when: str = '"mmd2 > 0.1"') -> str:
    return HEADER + f"rules:\n  - id: r\n    action: retrain\n    when: {when}\n{extra}"


def history() -> tuple[CheckRecord, ...]:
    """Twenty daily checks before NOW with every metric, every fourth one an enforced action."""
    rng = np.random.default_rng(16)
    checks = []
    for i in range(20):
        values = {name: float(v) for name, v in zip(METRICS, rng.uniform(-1, 2, len(METRICS)))}
        action = ACTIONS[1 + i % 3] if i % 4 == 0 else "none"
        end = NOW - timedelta(days=20 - i)
        checks.append(CheckRecord(f"w{i}", end, values, action, "r" if action != "none" else None, end))
    return tuple(checks)


HISTORY = history()
CURRENT = {name: 0.5 for name in METRICS}


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_located_refusal(result, path: Path) -> None:
    """Exit 2 and an error naming the file at line:column."""
    assert result.exit_code == 2, result.output
    match = LOCATED.search(result.output)
    assert match and match["file"] == str(path), result.output


# (policy text, what the refusal says): each passed `policy validate` or crashed with exit 1 before
CASES = {
    "cooldown-1000000w": (rule("    cooldown: 1000000w\n"), "longer than the limit of 3650d"),
    "cooldown-20-digit-weeks": (rule("    cooldown: 99999999999999999999w\n"), "longer than the limit"),
    "within-huge": (rule(when="{metric: mmd2, op: gt, value: 1, projected: {window: 3, within: 999999999d}}"),
                    "longer than the limit"),
    "priority-5000-digits": (rule("    priority: " + "9" * 5000 + "\n"), "number written with 5000 characters"),
    "sexagesimal-1MB": (rule("    priority: " + ":".join(["59"] * 330_000) + "\n"), "number written with"),
    "param-5000-digits": (HEADER + "params: {x: " + "9" * 5000 + "}\nrules:\n  - {id: r, action: retrain, "
                          "when: 'mmd2 > $x'}\n", "number written with"),
    "bad-timestamp": (rule("    description: 2026-13-45\n"), "bad timestamp value"),
    "expression-inf": (rule(when='"mmd2 > 1e999999"'), "must be a finite number or $param, got inf"),
    "mapping-inf": (rule(when="{metric: mmd2, op: gt, value: 1.0e+999999}"), "finite number"),
    "explain-width": (rule('    explain: "{mmd2:99999999}"\n'), "width is limited to 40"),
    "explain-precision": (rule('    explain: "{mmd2:.999999999f}"\n'), "precision to 17"),
    "explain-wider": (rule('    explain: "{mmd2:999999999999}"\n'), "width is limited"),
    # named conditions that each repeat the next ten times: 10**6 conditions if expanded (a deeper chain
    # is refused for its depth first)
    "condition-bomb": (HEADER + "conditions:\n" + "".join(
        f"  c{i}: {{any: [{', '.join([f'{{condition: c{i + 1}}}'] * 10)}]}}\n" for i in range(6))
        + "  c6: 'mmd2 > 0.1'\nrules:\n  - {id: r, action: retrain, when: {condition: c0}}\n",
        "named conditions expand to more than"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_value_is_refused_at_its_location(tmp_path: Path, name: str) -> None:
    text, message = CASES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(CURRENT))
    for command in (["policy", "validate", path], ["policy", "explain", "--policy", path, "--metrics", metrics]):
        started = time.process_time()
        result = invoke(*command)
        assert time.process_time() - started < MAX_SECONDS
        assert_located_refusal(result, path)
        assert message in result.output


def test_check_refuses_a_policy_that_used_to_crash_it(tmp_path: Path) -> None:
    """`check` reads the policy through the same loader as `validate`, before any MLflow work."""
    path = tmp_path / "cooldown.yaml"
    path.write_text(CASES["cooldown-1000000w"][0])
    current = tmp_path / "current.npy"
    np.save(current, np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32))
    result = invoke("check", "--model", "m", "--version", "1", "--current", current, "--policy", path,
                    "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--spool-dir", tmp_path / "spool")
    assert_located_refusal(result, path)
    assert not (tmp_path / "mlflow.db").exists()


def test_explain_spec_at_the_limit_still_renders() -> None:
    from drift_decider.policy import parse_policy

    policy = parse_policy(rule('    explain: "{mmd2:+040,.17f} {mmd2:.17e} {mmd2:40.17%}"\n'))
    decision = evaluate(policy, {"mmd2": 1e300}, PolicyState().after_all(policy, HISTORY), NOW)
    assert decision.action == "retrain" and len(decision.explanation) < 1000


@pytest.mark.parametrize("command, fifo_is", [("validate", "policy"), ("explain", "policy"),
                                              ("explain", "--metrics"), ("explain", "--history")])
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, command: str, fifo_is: str) -> None:
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    metrics = tmp_path / "metrics.json"
    metrics.write_text("{}")
    policy = str(fifo) if fifo_is == "policy" else str(SHIPPED_POLICY)
    given = {"--policy": policy, "--metrics": str(metrics), **({fifo_is: str(fifo)} if fifo_is != "policy" else {})}
    args = [policy] if command == "validate" else [arg for item in given.items() for arg in item]
    result = subprocess.run([sys.executable, "-m", "drift_decider", "policy", command, *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{fifo}:" in result.stderr and "not a regular file" in result.stderr


# --- fuzz ---------------------------------------------------------------------------------------------
# Scalars are written unquoted, so YAML resolves them: ints, floats, sexagesimals, timestamps, strings.
# About one draw in twenty is hostile (a middle value: hypothesis favours the ends of a range), so
# most policies load and the evaluation paths are exercised too.
hostile_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-10**30, 10**30).map(str),
    st.integers(1, 6000).map(lambda n: "9" * n), st.sampled_from([
        "1e999999", "-1e999999", "1.0e+999999", ".inf", "-.inf", ".nan", "0x1F", "0o17", "1_000", "190:20:30",
        "1:" * 500 + "1", "true", "null", "~", "2026-13-45", "2026-01-01", "'3'", "[]", "{}", "1e-320"]))


def mostly(sane: st.SearchStrategy, hostile: st.SearchStrategy) -> st.SearchStrategy:
    return st.integers(0, 19).flatmap(lambda k: hostile if k == 7 else sane)


numbers = mostly(st.one_of(st.floats(-3, 3).map(repr), st.integers(-3, 5).map(str), st.just("$x")),
                 hostile_numbers)
counts = mostly(st.integers(1, 4).map(str), hostile_numbers)
names = mostly(st.sampled_from(METRICS), st.sampled_from(["mmd2x", "index.rеcall_at_k", "a__b", "knn_jаccard"]))
durations = mostly(st.from_regex(r"\A[0-9]{1,3}(\.[0-9])?[mhdw]\Z"),
                   st.one_of(st.from_regex(r"\A[0-9]{1,25}(\.[0-9]{1,6})?[mhdw]\Z"), hostile_numbers,
                             st.sampled_from(["0m", "3650d", "3651d", "521w", "522w", "1e5d"])))
specs = mostly(st.from_regex(r"\A[+ ]?0?[0-9]?(\.[0-9])?[efg%]?\Z"), st.from_regex(r"\A[0-9.,+\- eEfFgG%]{0,12}\Z"))
ops = mostly(st.sampled_from(["gt", "gte", "lt", "lte", "eq", "ne"]), st.sampled_from(["in", "GT", "1"]))
symbols = mostly(st.sampled_from([">", ">=", "<", "<=", "==", "!="]), st.sampled_from(["=", "=>", "<>"]))
actions = mostly(st.sampled_from(ACTIONS[1:]), st.sampled_from(["none", "nothing"]))


@st.composite
def expressions(draw, depth: int = 0) -> str:
    if depth < 3 and draw(st.booleans()):
        joiner = draw(st.sampled_from([" and ", " or "]))
        left, right = draw(expressions(depth + 1)), draw(expressions(depth + 1))
        text = f"({left}{joiner}{right})"
        return f"not {text}" if draw(st.booleans()) else text
    operand = draw(mostly(numbers, st.just("$missing")))
    return f"{draw(names)} {draw(symbols)} {operand}"


@st.composite
def conditions(draw) -> str:
    kind = draw(mostly(st.sampled_from(["expr", "compare", "slope", "projected", "ewma", "cusum", "missing"]),
                       st.just("named")))
    if kind == "named":         # n0 and n1 may be defined (and refer to each other), n2 never is
        return f"{{condition: n{draw(st.integers(0, 2))}}}"
    if kind == "expr":
        return json.dumps(draw(expressions()), ensure_ascii=False)
    head = f"metric: {draw(names)}"
    if kind == "missing":
        return f"{{{head}, missing: {draw(st.sampled_from(['true', 'false', '1']))}}}"
    if kind in ("ewma", "cusum"):
        keys = ["lambda", "target", "sigma", "L"] if kind == "ewma" else ["target", "sigma", "k", "h"]
        body = ", ".join(f"{key}: {draw(mostly(st.floats(0.01, 1).map(repr), numbers))}" for key in keys
                         if draw(st.integers(0, 19)) != 7)
        return f"{{{head}, {kind}: {{{body}}}}}"
    head += f", op: {draw(ops)}, value: {draw(numbers)}"
    if kind == "slope":
        head += f", slope: {{window: {draw(mostly(st.integers(2, 30).map(str), counts))}}}"
    if kind == "projected":
        head += f", projected: {{window: {draw(st.integers(0, 1002))}, within: {draw(durations)}}}"
    return f"{{{head}}}"


@st.composite
def policies(draw) -> str:
    lines = [HEADER]
    if draw(st.integers(0, 9)) < 9:
        value = mostly(st.floats(-3, 3).map(repr), hostile_numbers)
        lines.append(f"params: {{x: {draw(value)}, y: {draw(value)}}}\n")
    if draw(st.integers(0, 3)) == 0:      # rarely: each definition is one more chance to be refused
        lines.append("conditions:\n" + "".join(f"  n{i}: {draw(conditions())}\n" for i in range(2)))
    lines.append("rules:\n")
    for index in range(draw(st.integers(1, 4))):
        lines.append(f"  - id: r{index}\n    action: {draw(actions)}\n"
                     f"    when: {draw(conditions())}\n")
        for key, values in (("priority", counts), ("for", counts), ("keep_firing_for", counts),
                            ("cooldown", durations)):
            if draw(st.booleans()):
                lines.append(f"    {key}: {draw(values)}\n")
        if draw(st.booleans()):
            placeholder = draw(mostly(st.sampled_from(["mmd2", "$x", "norm_ratio"]), st.just("nope")))
            lines.append(f"    explain: \"v={{{placeholder}:{draw(specs)}}}\"\n")
    text = "".join(lines)
    if draw(st.integers(0, 19)) == 7:       # now and then a splice of raw text anywhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=20)) + text[at:]
    return text


def _run_case(text: str, folder: Path) -> None:
    path = folder / "policy.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    tracemalloc.reset_peak()
    started = time.process_time()
    result = invoke("policy", "validate", path)
    if result.exit_code == 0:
        policy = load_policy(path)
        decision = evaluate(policy, CURRENT, PolicyState().after_all(policy, HISTORY), NOW,
                            context={"model": "m", "version": "1"})
        json.dumps(decision.to_dict(), default=str)
        decision.explain()
        explained = invoke("policy", "explain", "--policy", path, "--metrics", folder / "metrics.json",
                           "--now", NOW.isoformat())
        assert explained.exit_code == 0, explained.output
    else:
        assert_located_refusal(result, path)
    assert time.process_time() - started < MAX_SECONDS, text[:300]
    assert tracemalloc.get_traced_memory()[1] < MAX_BYTES, text[:300]


@seed(16)
@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(policies())
def test_fuzz_policy_validates_and_decides_or_is_refused_at_a_location(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "metrics.json").write_text(json.dumps(CURRENT))
        tracemalloc.start()
        try:
            _run_case(text, Path(folder))
        finally:
            tracemalloc.stop()


def test_policy_test_whose_steps_pass_the_year_9999_is_refused_at_the_test(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(rule())
    path = tmp_path / "p.test.yaml"
    path.write_text("apiVersion: drift-decider/v1\nkind: PolicyTest\npolicy: p.yaml\ntests:\n"
                    "  - name: long\n    interval: 3650d\n    steps:\n"
                    "      - {metrics: {mmd2: 0.0}, repeat: 1000, expect: {action: none}}\n")
    result = invoke("policy", "test", path)
    assert_located_refusal(result, path)
    assert "falls after the year 9999" in result.output


def test_a_policy_test_that_expects_nothing_is_refused_at_its_steps(tmp_path: Path) -> None:
    """Review s8, hostile #11: a scenario without any `expect` passed green whatever the policy decided."""
    (tmp_path / "p.yaml").write_text(rule())
    path = tmp_path / "p.test.yaml"
    path.write_text("apiVersion: drift-decider/v1\nkind: PolicyTest\npolicy: p.yaml\ntests:\n"
                    "  - name: hollow\n    steps:\n      - {metrics: {mmd2: 0.5}}\n")
    result = invoke("policy", "test", path)
    assert_located_refusal(result, path)
    assert "no step has an expect" in result.output
