"""A small, closed expression language for conditions: ``auc > 0.7 and not (knn_jaccard >= $low)``.

Why a hand-written parser instead of Python's ``ast``/``eval``: the only things an expression can
say are comparisons of a metric name with a number or ``$param``, joined by and/or/not and
parentheses. Dotted names (``index.recall_at_k``) are single identifiers, so there is no attribute
access on values, no calls, no subscripts, no strings; input length and nesting depth are bounded.
The parser builds the same condition tree the YAML mapping form builds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from drift_decider.policy.conditions import All, Any_, Node, Not

MAX_LENGTH = 500
MAX_DEPTH = 16

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<param>\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>>=|<=|==|!=|>|<)
  | (?P<lparen>\()
  | (?P<rparen>\))
""", re.VERBOSE)

SYMBOL_OP = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "==": "eq", "!=": "ne"}
KEYWORDS = {"and", "or", "not"}


class ExprError(ValueError):
    """A problem at character ``offset`` of the expression."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    offset: int


# builds a comparison leaf: (metric, op, number or None, param name or None, offset) -> Node
LeafBuilder = Callable[[str, str, float | None, str | None, int], Node]


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}", 0)
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            hint = {"[": "subscripts are not allowed", "'": "strings are not allowed",
                    '"': "strings are not allowed", ",": "calls are not allowed",
                    }.get(char, "not part of the expression language")
            raise ExprError(f"unexpected character {char!r}: {hint}", pos)
        kind = match.lastgroup or ""
        if kind != "space":
            word = match.group()
            if kind == "name" and word in KEYWORDS:
                kind = word
            elif kind == "name" and "__" in word:
                raise ExprError(f"{word!r}: names with '__' are not allowed", pos)
            tokens.append(Token(kind, word, pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over: or := and ('or' and)*; and := unary ('and' unary)*;
    unary := 'not' unary | '(' or ')' | comparison; comparison := name op operand | operand op name."""

    def __init__(self, text: str, build: LeafBuilder) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.build = build
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            found = "end of expression" if token.kind == "end" else repr(token.text)
            raise ExprError(f"expected {what}, found {found}", token.offset)
        self.i += 1
        return token

    def parse(self) -> Node:
        node = self.disjunction()
        token = self.peek()
        if token.kind != "end":
            hint = " (calls are not allowed)" if token.kind == "lparen" else ""
            raise ExprError(f"unexpected {token.text!r}{hint}", token.offset)
        return node

    def nested(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nested deeper than {MAX_DEPTH} levels", offset)

    def disjunction(self) -> Node:
        parts = [self.conjunction()]
        while self.peek().kind == "or":
            self.i += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Any_(tuple(parts))

    def conjunction(self) -> Node:
        parts = [self.unary()]
        while self.peek().kind == "and":
            self.i += 1
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "not":
            self.i += 1
            self.nested(token.offset)
            node = Not(self.unary())
            self.depth -= 1
            return node
        if token.kind == "lparen":
            self.i += 1
            self.nested(token.offset)
            node = self.disjunction()
            self.take("rparen", "')'")
            self.depth -= 1
            return node
        return self.comparison()

    def operand(self) -> Token:
        token = self.peek()
        if token.kind not in ("name", "number", "param"):
            found = "end of expression" if token.kind == "end" else repr(token.text)
            raise ExprError(f"expected a metric name, number or $param, found {found}", token.offset)
        self.i += 1
        if self.peek().kind == "lparen":
            raise ExprError(f"calls are not allowed ({token.text!r}(...))", self.peek().offset)
        return token

    def comparison(self) -> Node:
        left = self.operand()
        op = self.take("op", "a comparison operator (>, >=, <, <=, ==, !=)")
        right = self.operand()
        if self.peek().kind == "op":
            raise ExprError("chained comparisons are not allowed; join them with 'and'", self.peek().offset)
        if left.kind == "name" and right.kind != "name":
            return self._leaf(left, SYMBOL_OP[op.text], right)
        if right.kind == "name" and left.kind != "name":
            flipped = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}[op.text]
            return self._leaf(right, SYMBOL_OP[flipped], left)
        raise ExprError("a comparison needs exactly one metric name and one number or $param", left.offset)

    def _leaf(self, name: Token, op: str, operand: Token) -> Node:
        if operand.kind == "param":
            return self.build(name.text, op, None, operand.text[1:], name.offset)
        return self.build(name.text, op, float(operand.text), None, name.offset)


def parse_expression(text: str, build: LeafBuilder) -> Node:
    """Parse ``text`` into a condition tree; raises ExprError with the character offset of the problem."""
    return _Parser(text, build).parse()
