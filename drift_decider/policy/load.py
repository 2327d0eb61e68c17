"""From parsed YAML to a compiled Policy: strict keys, typed values, known metric names, located errors."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

from drift_decider.measure.metric_names import metric_keys
from drift_decider.errors import PolicyError
from drift_decider.policy.conditions import (OPS, SECONDS_PER_DAY, All, Any_, Compare, Cusum, Ewma, Leaf, Missing,
                                            Node, Not, Projected, Slope)
from drift_decider.policy.expr import ExprError, parse_expression
from drift_decider.policy.yaml_fields import Fields, shift, suggest, type_name, unknown_metric
from drift_decider.policy.records import ACTIONS, canonical_json
from drift_decider.policy.model import SEVERITIES, NamedCondition, Policy, Rule
from drift_decider.policy.explain_template import check_template
from drift_decider.policy.located_yaml import Located, LocatedList, load_yaml, plain, read_text

API_VERSION = "drift-decider/v1"
MAX_RULES = 200
MAX_CONDITION_DEPTH = 16
MAX_TREND_WINDOW = 1000
# condition nodes that references to named conditions may add to a policy: about 200 times what the
# default policy's add (51), and a bound on names that each repeat the next (the YAML alias bomb again)
MAX_EXPANDED_NODES = 10_000
_ID = r"[a-z0-9][a-z0-9_.-]{0,63}"
_PARAM = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
TREND_KEYS = ("slope", "projected", "ewma", "cusum")


def load_policy(path: str | Path) -> Policy:
    """Read, validate and compile a policy file. Raises PolicyError located at ``file:line:col``."""
    return parse_policy(read_text(path), str(path))


def parse_policy(text: str, name: str = "<policy>") -> Policy:
    """Compile policy YAML text; ``name`` is used in error locations."""
    data = load_yaml(text, name)
    doc = Fields(data, f"{name}:1:1", "policy",
                 ("apiVersion", "kind", "metadata", "params", "conditions", "mode", "rules"),
                 ("apiVersion", "kind", "metadata", "rules"))
    if doc.raw("apiVersion") != API_VERSION:
        raise doc.fail("apiVersion", f"expected {API_VERSION!r}, got {doc.raw('apiVersion')!r}")
    if doc.raw("kind") != "Policy":
        raise doc.fail("kind", f"expected 'Policy', got {doc.raw('kind')!r}")
    meta = doc.sub("metadata", "metadata", ("name", "version", "description"), ("name", "version"))
    version = meta.raw("version")
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version.strip():
        raise meta.fail("version", f"expected a version string, got {type_name(version)}")
    params = _params(doc)
    rules_node = doc.raw("rules")
    if not isinstance(rules_node, LocatedList) or not rules_node:
        raise doc.fail("rules", "expected a non-empty list of rules")
    if len(rules_node) > MAX_RULES:
        raise doc.fail("rules", f"{len(rules_node)} rules; the limit is {MAX_RULES}")
    named = _named_conditions(doc)
    builder = _ConditionBuilder(params, named)
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for order, (node, where) in enumerate(zip(rules_node, rules_node.item_pos)):
        rule = _rule(node, where, order, builder)
        if rule.id in seen:
            raise PolicyError(f"duplicate rule id {rule.id!r} (first at {seen[rule.id]})", rule.pos)
        seen[rule.id] = rule.pos
        rules.append(rule)
    unused = [key for key in named if key not in builder.used]
    for key in unused:          # a definition no rule reaches is checked all the same
        builder.expand(key, 0)
    canonical = canonical_json(plain(data))
    return Policy(name=meta.string("name", pattern=_ID), version=version.strip(),
                  mode=doc.choice("mode", ("enforce", "dry-run"), "enforce"),
                  rules=tuple(sorted(rules, key=Rule.precedence)), params=params,
                  description=meta.string("description"),
                  sha256=hashlib.sha256(canonical.encode()).hexdigest(), source=name,
                  conditions=tuple(NamedCondition(key, named.key_pos[key], key not in unused) for key in named))


def _named_conditions(doc: Fields) -> Located:
    """The ``conditions:`` section, name -> condition as a rule's ``when`` (checked where referenced)."""
    if not doc.has("conditions"):
        return Located.empty(doc.pos)
    node = doc.raw("conditions")
    if not isinstance(node, Located):
        raise doc.fail("conditions", f"expected a mapping of name to condition, got {type_name(node)}")
    for key in node:
        if not re.fullmatch(_ID, key):
            raise PolicyError(f"condition name {key!r} must match {_ID}", node.key_pos[key])
    return node


def _params(doc: Fields) -> dict[str, float]:
    if not doc.has("params"):
        return {}
    node = doc.raw("params")
    if not isinstance(node, Located):
        raise doc.fail("params", f"expected a mapping of name to number, got {type_name(node)}")
    out: dict[str, float] = {}
    for key, value in node.items():
        if not re.fullmatch(_PARAM, key):
            raise PolicyError(f"param name {key!r} must match {_PARAM}", node.key_pos[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PolicyError(f"param {key!r} must be a finite number, got {_what_it_is(value)}",
                              node.value_pos[key])
        out[key] = float(value)
    return out


def _rule(node: Any, where: str, order: int, builder: "_ConditionBuilder") -> Rule:
    f = Fields(node, where, "rule", ("id", "action", "priority", "when", "for", "cooldown", "keep_firing_for",
                                      "severity", "explain", "description"), ("id", "action", "when"))
    rule_id = f.string("id", pattern=_ID)
    f.what = f"rule {rule_id!r}"
    explain = f.string("explain")
    if explain is not None:
        try:
            check_template(explain, metric_keys(), builder.params)
        except ValueError as exc:
            raise f.fail("explain", str(exc)) from None
    return Rule(id=rule_id, action=f.choice("action", ACTIONS[1:]),
                when=builder.node(f.raw("when"), f.at("when"), 0),
                priority=f.integer("priority", 0, low=-1000, high=1000),
                sustain=f.integer("for", 1, low=1, high=1000),
                cooldown_seconds=f.duration_seconds("cooldown"), keep_firing_for=_keep_firing_for(f),
                severity=f.choice("severity", SEVERITIES, "warning"), explain=explain,
                description=f.string("description"), pos=where, order=order)


def _keep_firing_for(f: Fields) -> int:
    """Counted in checks, like ``for`` (a duration is a likely slip: in Prometheus it is time)."""
    value = f.raw("keep_firing_for")
    if isinstance(value, str):
        raise f.fail("keep_firing_for", f"counts checks, like 'for': expected an integer, got {value!r}")
    return f.integer("keep_firing_for", 0, low=0, high=1000)


class _ConditionBuilder:
    """Builds condition trees from the mapping form and the expression form, resolving ``$params`` and
    expanding ``{condition: name}`` references, so the condition compiler only ever sees plain trees."""

    def __init__(self, params: dict[str, float], named: Located) -> None:
        self.params = params
        self.named = named
        self.used: set[str] = set()           # named conditions reached from a rule
        self.expanding: list[str] = []        # the chain of references being expanded, for cycles
        self.budget = MAX_EXPANDED_NODES      # nodes expansion may still add

    def node(self, raw: Any, where: str, depth: int) -> Node:
        if depth > MAX_CONDITION_DEPTH:
            raise PolicyError(f"conditions nested deeper than {MAX_CONDITION_DEPTH} levels", where)
        if isinstance(raw, str):
            tree = self.expression(raw, where)
            self.charge(len(tree.leaves()), where)      # an expression holds up to about 20 comparisons
            return tree
        self.charge(1, where)
        if not isinstance(raw, Located):
            raise PolicyError(f"a condition must be a mapping or an expression string, got {type_name(raw)}",
                              where)
        for key in ("all", "any", "not", "condition"):
            if key in raw:
                if len(raw) != 1:
                    extra = next(k for k in raw if k != key)
                    raise PolicyError(f"'{key}' cannot be combined with other keys (found {extra!r})",
                                      raw.key_pos[extra])
                if key == "condition":      # a level of its own: a chain of references is nesting too
                    return self.reference(raw[key], raw.value_pos[key], depth + 1)
                return self.combinator(key, raw[key], raw.value_pos[key], depth)
        if "metric" not in raw:
            keys = ("metric", "all", "any", "not", "condition")
            raise PolicyError("a condition needs 'metric' (or 'all', 'any', 'not', 'condition', or an expression"
                              " string)" + suggest(next(iter(raw), ""), keys), raw.pos)
        return self.leaf(raw)

    def charge(self, nodes: int, where: str) -> None:
        """Count what expanding named conditions adds (the alias bomb again: names that each repeat the
        next would grow without bound); what rules write themselves is bounded by the file's size."""
        if self.expanding:
            self.budget -= nodes
            if self.budget < 0:
                raise PolicyError(f"named conditions expand to more than {MAX_EXPANDED_NODES} conditions",
                                  where)

    def reference(self, name: Any, where: str, depth: int) -> Node:
        """``{condition: name}``: the named condition's tree, in place of the reference."""
        if not isinstance(name, str):
            raise PolicyError(f"'condition' takes the name of a named condition, got {type_name(name)}", where)
        if name not in self.named:
            raise PolicyError(f"unknown condition {name!r}{suggest(name, self.named)}"
                              + ("" if self.named else " (the policy has no 'conditions' section)"), where)
        if name in self.expanding:
            cycle = " -> ".join(self.expanding[self.expanding.index(name):] + [name])
            raise PolicyError(f"named conditions refer to each other in a cycle: {cycle}", where)
        self.used.add(name)
        return self.expand(name, depth)

    def expand(self, name: str, depth: int) -> Node:
        """A fresh tree per reference, exactly as if the definition were written there: the engine sees
        nothing new, and errors point into the definition."""
        self.expanding.append(name)
        try:
            return self.node(self.named[name], self.named.value_pos[name], depth)
        finally:
            self.expanding.pop()

    def combinator(self, kind: str, raw: Any, where: str, depth: int) -> Node:
        if kind == "not":
            return Not(self.node(raw, where, depth + 1))
        if not isinstance(raw, LocatedList) or not raw:
            raise PolicyError(f"'{kind}' needs a non-empty list of conditions, got {type_name(raw)}", where)
        children = tuple(self.node(item, pos, depth + 1) for item, pos in zip(raw, raw.item_pos))
        return All(children) if kind == "all" else Any_(children)

    def expression(self, text: str, where: str) -> Node:
        try:
            return parse_expression(text, lambda metric, op, value, param, offset:
                                    self.compare(metric, op, value, param, shift(where, offset)))
        except ExprError as exc:
            raise PolicyError(f"in expression: {exc}", shift(where, exc.offset)) from None

    def metric(self, name: Any, where: str) -> str:
        if not isinstance(name, str):
            raise PolicyError(f"metric must be a string, got {type_name(name)}", where)
        problem = unknown_metric(name)
        if problem:
            raise PolicyError(problem, where)
        return name

    def number(self, raw: Any, where: str, what: str) -> tuple[float, str | None]:
        """A number, or ``$name`` of a param: returns (value, param name or None)."""
        if isinstance(raw, str) and raw.startswith("$"):
            name = raw[1:]
            if name not in self.params:
                raise PolicyError(f"unknown param {raw!r}{suggest(name, self.params)}", where)
            return self.params[name], name
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise PolicyError(f"{what} must be a finite number or $param, got {_what_it_is(raw)}", where)
        return float(raw), None

    def compare(self, metric: str, op: str, value: float | None, param: str | None, where: str) -> Compare:
        """A threshold from an expression, its number checked as the mapping form's (1e999999 is inf)."""
        metric = self.metric(metric, where)
        value, param = self.number(value if param is None else "$" + param, where, "value")
        return Compare(metric=metric, pos=where, op=op, value=value, param=param)

    def leaf(self, raw: Located) -> Leaf:
        f = Fields(raw, raw.pos, "condition", ("metric", "op", "value", "missing") + TREND_KEYS, ("metric",))
        metric = self.metric(f.raw("metric"), f.at("metric"))
        if f.has("missing"):
            if len(raw) != 2:
                extra = next(k for k in raw if k not in ("metric", "missing"))
                raise f.fail(extra, "a 'missing' condition takes only 'metric' and 'missing'")
            if not isinstance(f.raw("missing"), bool):
                raise f.fail("missing", f"expected true or false, got {type_name(f.raw('missing'))}")
            return Missing(metric=metric, pos=raw.pos, missing=f.raw("missing"))
        trends = [k for k in TREND_KEYS if f.has(k)]
        if len(trends) > 1:
            raise f.fail(trends[1], f"a condition takes one trend ({' or '.join(TREND_KEYS)}), "
                                    f"found {trends}")
        trend = trends[0] if trends else None
        if trend in ("ewma", "cusum"):
            for key in ("op", "value"):
                if f.has(key):
                    raise f.fail(key, f"{trend} conditions are alarms and take no {key!r}")
            return self.ewma(f, metric) if trend == "ewma" else self.cusum(f, metric)
        for key in ("op", "value"):
            if not f.has(key):
                raise PolicyError(f"condition on {metric!r} is missing required key {key!r}", raw.pos)
        op = f.choice("op", tuple(OPS))
        value, param = self.number(f.raw("value"), f.at("value"), "value")
        if trend is None:
            return Compare(metric=metric, pos=raw.pos, op=op, value=value, param=param)
        if trend == "slope":
            sub = f.sub("slope", "slope", ("window",), ("window",))
            return Slope(metric=metric, pos=raw.pos, op=op, value=value, param=param,
                         window=sub.integer("window", 0, low=2, high=MAX_TREND_WINDOW))
        sub = f.sub("projected", "projected", ("window", "within"), ("window", "within"))
        within = sub.duration_seconds("within")
        if not within or within <= 0:
            raise sub.fail("within", "must be a positive duration")
        return Projected(metric=metric, pos=raw.pos, op=op, value=value, param=param,
                         window=sub.integer("window", 0, low=2, high=MAX_TREND_WINDOW),
                         within_days=within / SECONDS_PER_DAY)

    def positive(self, sub: Fields, key: str, default: float | None = None) -> float:
        if not sub.has(key):
            if default is None:
                raise PolicyError(f"{sub.what} is missing required key {key!r}", sub.pos)
            return default
        value, _ = self.number(sub.raw(key), sub.at(key), key)
        if value <= 0:
            raise sub.fail(key, f"must be positive, got {value:g}")
        return value

    def ewma(self, f: Fields, metric: str) -> Ewma:
        sub = f.sub("ewma", "ewma", ("lambda", "target", "sigma", "L", "side"), ("lambda", "target", "sigma"))
        lam = self.positive(sub, "lambda")
        if lam > 1:
            raise sub.fail("lambda", f"must be in (0, 1], got {lam:g}")
        target, _ = self.number(sub.raw("target"), sub.at("target"), "target")
        return Ewma(metric=metric, pos=f.pos, lam=lam, target=target, sigma=self.positive(sub, "sigma"),
                    limit=self.positive(sub, "L", 3.0),
                    side=sub.choice("side", ("upper", "lower", "both"), "both"))

    def cusum(self, f: Fields, metric: str) -> Cusum:
        sub = f.sub("cusum", "cusum", ("target", "sigma", "k", "h", "side"), ("target", "sigma"))
        target, _ = self.number(sub.raw("target"), sub.at("target"), "target")
        return Cusum(metric=metric, pos=f.pos, target=target, sigma=self.positive(sub, "sigma"),
                     k=self.positive(sub, "k", 0.5), h=self.positive(sub, "h", 5.0),
                     side=sub.choice("side", ("upper", "lower", "both"), "both"))


def _what_it_is(value: Any) -> str:
    """What a value that should be a number is, for the error: YAML 1.1 reads 1e-5 and 1.0e308 (an
    exponent without a sign) as text, which no reader expects, so say how to write them."""
    if isinstance(value, float):
        return repr(value)
    try:
        number = float(value) if isinstance(value, str) else None
    except ValueError:
        number = None
    if number is not None and math.isfinite(number) and "e" not in value.lower():    # a quoted number
        return f"string {value!r} (write it without quotes to make it a number)"
    if number is not None and math.isfinite(number):
        mantissa, e, exponent = repr(number).partition("e")
        written = (mantissa if "." in mantissa else mantissa + ".0") + e + exponent
        return f"string {value!r} (YAML reads a number with an exponent as a number only in the form {written})"
    return type_name(value)
