"""Loading policies: strict schema, located errors, and hostile input that must never execute."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from drift_decider.errors import PolicyError
from drift_decider.policy import load_policy, parse_policy
from drift_decider.policy.located_yaml import MAX_FILE_BYTES

HEADER = """\
apiVersion: drift-decider/v1
kind: Policy
metadata: {name: t, version: "1"}
"""


def policy(body: str) -> str:
    return HEADER + textwrap.dedent(body)


GOOD = policy("""\
rules:
  - id: r1
    action: retrain
    when: "knn_jaccard < 0.5"
""")


def error_of(text: str, name: str = "p.yaml") -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, name)
    return info.value


def test_good_policy_loads_with_defaults() -> None:
    p = parse_policy(GOOD)
    (rule,) = p.rules
    assert (p.name, p.version, p.mode) == ("t", "1", "enforce")
    assert (rule.priority, rule.sustain, rule.cooldown_seconds, rule.severity) == (0, 1, None, "warning")


def test_sha256_ignores_comments_and_layout_but_not_content() -> None:
    reformatted = GOOD.replace('when: "knn_jaccard < 0.5"', "when: 'knn_jaccard < 0.5'   # a comment")
    assert parse_policy(reformatted).sha256 == parse_policy(GOOD).sha256
    assert parse_policy(GOOD.replace("0.5", "0.4")).sha256 != parse_policy(GOOD).sha256


def test_unknown_key_is_located_and_suggests() -> None:
    err = error_of(GOOD.replace("    action: retrain", "    acton: retrain\n    action: retrain"))
    assert err.location == "p.yaml:6:5"
    assert "unknown key 'acton'" in str(err) and "did you mean 'action'" in str(err)


def test_unknown_metric_suggests_the_catalogue_name() -> None:
    err = error_of(GOOD.replace("knn_jaccard", "knn_jacard"))
    assert "unknown metric 'knn_jacard'" in str(err) and "'knn_jaccard'" in str(err)
    assert err.location == "p.yaml:7:12"      # column of the name inside the quoted expression


def test_p_value_companions_only_exist_for_tests() -> None:
    parse_policy(GOOD.replace("knn_jaccard < 0.5", "mmd2.p_value < 0.01"))
    err = error_of(GOOD.replace("knn_jaccard < 0.5", "knn_jaccard.p_value < 0.01"))
    assert "unknown metric" in str(err)


@pytest.mark.parametrize("body, message, at", [
    ("rules: []\n", "non-empty list of rules", (4, "[]")),
    ("rules:\n  - id: r1\n    when: 'knn_jaccard < 0.5'\n", "missing required key 'action'", (5, "id")),
    ("rules:\n  - id: r1\n    action: rebuild\n    when: 'knn_jaccard < 0.5'\n",
     "'rebuild' is not one of", (6, "rebuild")),
    ("rules:\n  - id: r1\n    action: retrain\n    priority: high\n    when: 'knn_jaccard < 0.5'\n",
     "expected an integer, got string", (7, "high")),
    ("rules:\n  - id: r1\n    action: retrain\n    for: 0\n    when: 'knn_jaccard < 0.5'\n",
     "outside [1, 1000]", (7, "0")),
    ("rules:\n  - id: r1\n    action: retrain\n    cooldown: soon\n    when: 'knn_jaccard < 0.5'\n",
     "duration like 12h", (7, "soon")),
    ("rules:\n  - id: r1\n    action: retrain\n    when: {metric: knn_jaccard, op: lt}\n",
     "missing required key 'value'", (7, "{")),
    ("rules:\n  - id: r1\n    action: retrain\n    when: {metric: knn_jaccard, op: less, value: 1}\n",
     "'less' is not one of", (7, "less")),
    ("rules:\n  - id: r1\n    action: retrain\n    when: {metric: knn_jaccard, op: lt, value: '0.5'}\n",
     "must be a finite number or $param, got string", (7, "0.5")),
    ("rules:\n  - id: r1\n    action: retrain\n    when: {metric: knn_jaccard, op: lt, value: $nope}\n",
     "unknown param '$nope'", (7, "$nope")),
    ("rules:\n  - id: r1\n    action: retrain\n    when: {all: []}\n", "non-empty list", (7, "[]")),
    ("rules:\n  - id: r1\n    action: retrain\n    when: 12\n", "got integer", (7, "12")),
    ("rules:\n  - id: r1\n    action: retrain\n    when: {all: ['knn_jaccard < 1'], "
     "any: ['knn_jaccard < 1']}\n",
     "cannot be combined", (7, "any")),
    ("rules:\n  - {id: r1, action: retrain, when: 'knn_jaccard < 1'}\n"
     "  - {id: r1, action: retrain, when: 'knn_jaccard < 1'}\n", "duplicate rule id 'r1'", (6, "{")),
    ("rules:\n  - {id: r1, action: retrain, action: recalibrate, when: 'knn_jaccard < 1'}\n",
     "duplicate key 'action'", (5, "action: recalibrate")),
    ("params: {a: yes}\nrules:\n  - {id: r1, action: retrain, when: 'knn_jaccard < $a'}\n",
     "param 'a' must be a finite number", (4, "yes")),
    ("rules:\n  - id: r1\n    action: retrain\n    when: {metric: norm_ratio, "
     "ewma: {lambda: 1.5, target: 1, sigma: 1}}\n",
     "must be in (0, 1]", (7, "1.5")),
    ("rules:\n  - id: r1\n    action: retrain\n    when: {metric: norm_ratio, "
     "cusum: {target: 1, sigma: 0}}\n",
     "must be positive", (7, "0}")),
    ("rules:\n  - id: r1\n    action: retrain\n    when: {metric: norm_ratio, "
     "slope: {window: 1}, op: gt, value: 0}\n",
     "outside [2, 1000]", (7, "1}")),
    ("rules:\n  - id: r1\n    action: retrain\n    explain: 'x {knn_jaccard.__class__}'\n"
     "    when: 'knn_jaccard < 1'\n",
     "unknown metric 'knn_jaccard.__class__' in template", (7, "x {")),
    ("mode: shadow\nrules:\n  - {id: r1, action: retrain, when: 'knn_jaccard < 1'}\n",
     "'shadow' is not one of", (4, "shadow")),
    ("params: {small: 1e-5}\nrules:\n  - {id: r1, action: retrain, when: 'knn_jaccard < $small'}\n",
     "got string '1e-5' (YAML reads a number with an exponent as a number only in the form 1.0e-05)",
     (4, "1e-5")),
    ("params: {small: '0.3'}\nrules:\n  - {id: r1, action: retrain, when: 'knn_jaccard < $small'}\n",
     "got string '0.3' (write it without quotes to make it a number)", (4, "0.3")),
])
def test_schema_errors_are_clear_and_located(body: str, message: str, at: tuple[int, str]) -> None:
    """``at`` is (line, text the error must point at): the column is where that text starts."""
    text = HEADER + body
    line, token = at
    err = error_of(text)
    assert message in str(err)
    assert err.location == f"p.yaml:{line}:{text.splitlines()[line - 1].index(token) + 1}"


def test_wrong_api_version_and_kind() -> None:
    assert "apiVersion" in str(error_of(GOOD.replace("drift-decider/v1", "drift-decider/v2")))
    assert "expected 'Policy'" in str(error_of(GOOD.replace("kind: Policy", "kind: PolicyTest")))


@pytest.mark.parametrize("payload", [
    "!!python/object/apply:os.system ['touch /tmp/pwned-by-policy']",
    "!!python/object:builtins.dict {}",
    "!!python/name:os.system",
    "!custom 1",
    "!!binary aGVsbG8=",
])
def test_yaml_tags_are_rejected_and_nothing_runs(payload: str, tmp_path: Path) -> None:
    marker = Path("/tmp/pwned-by-policy")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.yaml"
    path.write_text(GOOD + f"params:\n  x: {payload}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert "tags are not allowed" in str(info.value)
    assert info.value.location == f"{path}:9:6"
    assert not marker.exists()


def test_billion_laughs_is_rejected_at_the_first_anchor() -> None:
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(8):      # each level repeats the previous one nine times: 9**9 strings if expanded
        bomb += f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n"
    err = error_of(bomb)
    assert "anchors" in str(err) and err.location == "p.yaml:1:4"


def test_aliases_are_rejected() -> None:
    assert "aliases" in str(error_of(GOOD + "extra: *nothing\n"))


def test_oversized_file_is_rejected_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(GOOD.encode() + b"#" * (10 * 1024 * 1024))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert "larger than the" in str(info.value) and str(MAX_FILE_BYTES) in str(info.value)


def test_deeply_nested_yaml_is_bounded() -> None:
    err = error_of(HEADER + "rules: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nesting deeper than" in str(err)


def test_deeply_nested_conditions_are_bounded() -> None:
    when = "{not: " * 40 + "'knn_jaccard < 1'" + "}" * 40
    err = error_of(HEADER + f"rules:\n  - id: r1\n    action: retrain\n    when: {when}\n")
    assert "nested deeper than" in str(err)


def test_missing_file_binary_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="absent.yaml:1:1: file not found"):
        load_policy(tmp_path / "absent.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(tmp_path / "bin.yaml")
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    with pytest.raises(PolicyError, match="empty"):
        load_policy(tmp_path / "empty.yaml")


def test_yaml_syntax_error_is_located() -> None:
    err = error_of(GOOD + "rules: [unclosed\n")
    assert "YAML syntax error" in str(err) and err.location.startswith("p.yaml:")


def test_top_level_must_be_a_mapping() -> None:
    assert "must be a mapping, got list" in str(error_of("- 1\n- 2\n"))


def test_yaml_11_boolean_keys_stay_strings() -> None:
    err = error_of(GOOD + "on: 1\n")
    assert "unknown key 'on'" in str(err)
