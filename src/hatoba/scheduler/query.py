"""The ECS cluster query language: parse once into an AST, evaluate per node.

    expression := or_expr
    or_expr    := and_expr (("or" | "||") and_expr)*
    and_expr   := unary (("and" | "&&") unary)*
    unary      := "not" unary | "(" or_expr ")" | comparison
    comparison := subject operator [value | "[" value ("," value)* "]"]

Subjects: ``attribute:<name>``, ``nodeId`` (aliases ``ec2InstanceId``, ``instanceId``),
``task:group`` (true when any task group on the node matches) and ``runningTasksCount``.
Operators as ECS spells them, symbol or word: ``== equals``, ``!= not_equals``, ``>``,
``>=``, ``<``, ``<=`` (and ``greater_than`` ...), ``exists``, ``!exists``, ``in``,
``!in``, ``=~ matches``, ``!~ not_matches``. ``and`` binds tighter than ``or``; ``not``
is a hatoba extension. Values are bare words (``t2.small``, ``us-east-1a``, ``g2.*``) or
quoted strings when they hold spaces, brackets or commas (a regex like ``"(a|b).*"``).

Why an AST instead of evaluating text: a service's constraint is checked against every
node on every placement, so parsing and ``=~`` regex compilation happen once, and bad
input is rejected at registration with the field path and character position.
A missing attribute makes every positive operator false and every negated one
(``!=``, ``!in``, ``!~``, ``!exists``) true.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hatoba.model.errors import FieldError, ValidationFailed

_OPERATORS = {
    "==": "==",
    "equals": "==",
    "!=": "!=",
    "not_equals": "!=",
    ">": ">",
    "greater_than": ">",
    ">=": ">=",
    "greater_than_equal": ">=",
    "<": "<",
    "less_than": "<",
    "<=": "<=",
    "less_than_equal": "<=",
    "exists": "exists",
    "!exists": "!exists",
    "not_exists": "!exists",
    "in": "in",
    "!in": "!in",
    "not_in": "!in",
    "=~": "=~",
    "matches": "=~",
    "!~": "!~",
    "not_matches": "!~",
}
_NEGATED = frozenset({"!=", "!in", "!~", "!exists"})
_NODE_ID_SUBJECTS = frozenset({"nodeid", "ec2instanceid", "instanceid"})
_PUNCT = "()[],"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _ordered(op: str, left: str, right: str, right_num: float | None) -> bool:
    """ECS compares numerically when both sides are numbers, else lexically."""
    left_num = _number(left) if right_num is not None else None
    a: float | str
    b: float | str
    if left_num is not None and right_num is not None:
        a, b = left_num, right_num
    else:
        a, b = left, right
    if op == ">":
        return a > b  # type: ignore[operator]
    if op == ">=":
        return a >= b  # type: ignore[operator]
    if op == "<":
        return a < b  # type: ignore[operator]
    return a <= b  # type: ignore[operator]


@dataclass(frozen=True)
class NodeView:
    """What an expression can see of a node."""

    node_id: str
    attributes: Mapping[str, str]
    groups: frozenset[str] = frozenset()
    running_tasks: int = 0


@dataclass(frozen=True)
class Comparison:
    subject: str  # "attribute:<name>", "nodeId", "task:group", "runningTasksCount"
    op: str  # canonical symbol from _OPERATORS
    values: tuple[str, ...] = ()
    numbers: tuple[float | None, ...] = ()
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    def _values_of(self, node: NodeView) -> list[str] | None:
        s = self.subject
        if s.startswith("attribute:"):
            v = node.attributes.get(s[len("attribute:") :])
            return None if v is None else [v]
        if s == "nodeId":
            return [node.node_id]
        if s == "task:group":
            return sorted(node.groups) or None
        return [str(node.running_tasks)]

    def _one(self, value: str) -> bool:
        op = self.op
        if op in ("==", "!="):
            return value == self.values[0]
        if op in ("in", "!in"):
            return value in self.values
        if op in ("=~", "!~"):
            assert self.pattern is not None
            return self.pattern.fullmatch(value) is not None
        if op in (">", ">=", "<", "<="):
            return _ordered(op, value, self.values[0], self.numbers[0])
        return True  # exists

    def evaluate(self, node: NodeView) -> bool:
        values = self._values_of(node)
        hit = values is not None and any(self._one(v) for v in values)
        return not hit if self.op in _NEGATED else hit


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr

    def evaluate(self, node: NodeView) -> bool:
        return self.left.evaluate(node) and self.right.evaluate(node)


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr

    def evaluate(self, node: NodeView) -> bool:
        return self.left.evaluate(node) or self.right.evaluate(node)


@dataclass(frozen=True)
class Not:
    inner: Expr

    def evaluate(self, node: NodeView) -> bool:
        return not self.inner.evaluate(node)


Expr = Comparison | And | Or | Not


@dataclass(frozen=True)
class _Token:
    text: str
    pos: int
    quoted: bool = False


class _Error(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


def _tokenize(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in _PUNCT:
            out.append(_Token(c, i))
            i += 1
        elif c in "\"'":
            end = text.find(c, i + 1)
            if end < 0:
                raise _Error(i, "unterminated quoted string")
            out.append(_Token(text[i + 1 : end], i, quoted=True))
            i = end + 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _PUNCT:
                i += 1
            out.append(_Token(text[start:i], start))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self, expected: str) -> _Token:
        tok = self.peek()
        if tok is None:
            raise _Error(len(self.text), f"expected {expected}, got end of expression")
        self.i += 1
        return tok

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        if tok is not None and not tok.quoted and tok.text.lower() in words:
            self.i += 1
            return True
        return False

    def parse(self) -> Expr:
        if not self.tokens:
            raise _Error(0, "empty expression")
        expr = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise _Error(tok.pos, f"expected 'and', 'or' or end of expression, got {tok.text!r}")
        return expr

    def or_expr(self) -> Expr:
        expr = self.and_expr()
        while self.keyword("or", "||"):
            expr = Or(expr, self.and_expr())
        return expr

    def and_expr(self) -> Expr:
        expr = self.unary()
        while self.keyword("and", "&&"):
            expr = And(expr, self.unary())
        return expr

    def unary(self) -> Expr:
        if self.keyword("not"):
            return Not(self.unary())
        tok = self.peek()
        if tok is not None and not tok.quoted and tok.text == "(":
            self.i += 1
            expr = self.or_expr()
            close = self.next("')'")
            if close.text != ")" or close.quoted:
                raise _Error(close.pos, f"expected ')', got {close.text!r}")
            return expr
        return self.comparison()

    def subject(self) -> str:
        tok = self.next("a subject such as attribute:<name>")
        t = tok.text
        if not tok.quoted and t.startswith("attribute:") and len(t) > len("attribute:"):
            return t
        if not tok.quoted and t.lower() in _NODE_ID_SUBJECTS:
            return "nodeId"
        if not tok.quoted and t in ("task:group", "runningTasksCount"):
            return t
        raise _Error(
            tok.pos,
            f"unknown subject {t!r}: expected attribute:<name>, nodeId, ec2InstanceId, "
            "task:group or runningTasksCount",
        )

    def value(self) -> str:
        tok = self.next("a value")
        if not tok.quoted and (tok.text in _PUNCT or tok.text.lower() in ("and", "or")):
            raise _Error(tok.pos, f"expected a value, got {tok.text!r}")
        return tok.text

    def comparison(self) -> Expr:
        subject = self.subject()
        tok = self.next("an operator")
        op = None if tok.quoted else _OPERATORS.get(tok.text.lower())
        if op is None:
            raise _Error(tok.pos, f"unknown operator {tok.text!r}")
        if op in ("exists", "!exists"):
            return Comparison(subject, op)
        if op in ("in", "!in"):
            return Comparison(subject, op, self.value_list())
        value, pos = self.value(), self.tokens[self.i - 1].pos
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(value)
            except re.error as e:
                raise _Error(pos, f"invalid regular expression {value!r}: {e}") from None
        return Comparison(subject, op, (value,), (_number(value),), pattern)

    def value_list(self) -> tuple[str, ...]:
        tok = self.next("'['")
        if tok.text != "[" or tok.quoted:
            raise _Error(tok.pos, f"expected '[' to start a list, got {tok.text!r}")
        values = [self.value()]
        while True:
            sep = self.next("',' or ']'")
            if sep.quoted or sep.text not in (",", "]"):
                raise _Error(sep.pos, f"expected ',' or ']', got {sep.text!r}")
            if sep.text == "]":
                return tuple(values)
            values.append(self.value())


def is_static(expr: Expr) -> bool:
    """True when ``expr`` reads only a node's id and attributes, which never change while a
    node is registered, so its result can be cached per node."""
    if isinstance(expr, Comparison):
        return expr.subject == "nodeId" or expr.subject.startswith("attribute:")
    if isinstance(expr, Not):
        return is_static(expr.inner)
    return is_static(expr.left) and is_static(expr.right)


def parse(text: str, path: str = "expression") -> Expr:
    """Parse ``text``; a bad expression raises ``ValidationFailed`` naming ``path`` and the
    0-based character position of the problem."""
    if len(text) > 2000:  # ECS's limit; keeps pathological input cheap
        raise ValidationFailed([FieldError(path, "must be at most 2000 characters")], "query")
    try:
        return _Parser(text).parse()
    except _Error as e:
        raise ValidationFailed(
            [FieldError(path, f"at position {e.pos}: {e.message}")], "cluster query"
        ) from None
