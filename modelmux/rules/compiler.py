"""Routing rules: a small, safe expression language over request facts, compiled once.

``compile_rule(text)`` parses and type-checks a rule into a tree of small node objects;
``Rule.matches(facts)`` evaluates it with no ``eval`` and no exceptions for odd facts (a missing
or mistyped fact is "absent": every comparison with it is false, except ``!=``). The lexer and
``RuleError`` live in ``rules.parse``; what a rule selects is the router's business.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from modelmux.rules.parse import RuleError, Token, tokenize, vet_regex

__all__ = ["FACTS", "Rule", "RuleError", "compile_rule"]

Facts = Mapping[str, object]
STR, NUM, BOOL = "string", "number", "boolean"
FACTS = {"model": STR, "stream": BOOL, "prompt_tokens": NUM, "max_tokens": NUM,
         "has_tools": BOOL, "has_images": BOOL, "user": STR, "key": STR, "cost_sensitive": BOOL,
         "temperature": NUM, "seed": NUM, "deterministic": BOOL}
LOOKUPS = {"header": "headers", "metadata": "metadata"}
MAX_DEPTH = 32
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_COMPARE = frozenset({"==", "!=", *_ORDER})


def _typed(value: object, kind: str) -> object:
    if kind == STR:
        return value if isinstance(value, str) else None
    if kind == BOOL:
        return value if isinstance(value, bool) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Node:
    """One node of a compiled rule: its static type, its column, ``eval`` and source form."""

    __slots__ = ("column", "type")
    type: str
    column: int

    def eval(self, facts: Facts) -> object:
        raise NotImplementedError


class Lit(Node):
    __slots__ = ("value",)

    def __init__(self, value: str | float | bool, column: int = 1) -> None:
        self.value, self.column = value, column
        self.type = BOOL if isinstance(value, bool) else STR if isinstance(value, str) else NUM

    def eval(self, facts: Facts) -> object:
        return self.value

    def __str__(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return _quote(self.value) if isinstance(self.value, str) else repr(self.value)


class Fact(Node):
    __slots__ = ("name",)

    def __init__(self, name: str, column: int = 1) -> None:
        self.name, self.type, self.column = name, FACTS[name], column

    def eval(self, facts: Facts) -> object:
        return _typed(facts.get(self.name), self.type)

    def __str__(self) -> str:
        return self.name


class Lookup(Node):
    """``header("name")`` (case-insensitive; pass lower-case keys) or ``metadata("name")``."""

    __slots__ = ("func", "key")

    def __init__(self, func: str, key: str, column: int = 1) -> None:
        self.func, self.type, self.column = func, STR, column
        self.key = key.lower() if func == "header" else key

    def eval(self, facts: Facts) -> object:
        table = facts.get(LOOKUPS[self.func])
        return _typed(table.get(self.key), STR) if isinstance(table, Mapping) else None

    def __str__(self) -> str:
        return f"{self.func}({_quote(self.key)})"


class Not(Node):
    __slots__ = ("operand",)

    def __init__(self, operand: Node, column: int = 1) -> None:
        self.operand, self.type, self.column = operand, BOOL, column

    def eval(self, facts: Facts) -> object:
        return self.operand.eval(facts) is not True

    def __str__(self) -> str:
        return f"(not {self.operand})"


class Chain(Node):
    """``and`` / ``or`` over any number of operands, kept flat so evaluation never recurses deep."""

    __slots__ = ("items", "op")

    def __init__(self, op: str, items: list[Node]) -> None:
        self.op, self.items, self.type, self.column = op, items, BOOL, items[0].column

    def eval(self, facts: Facts) -> object:
        if self.op == "and":
            return all(item.eval(facts) is True for item in self.items)
        return any(item.eval(facts) is True for item in self.items)

    def __str__(self) -> str:
        return "(" + f" {self.op} ".join(map(str, self.items)) + ")"


class Binary(Node):
    """A comparison: ``==``, ``!=``, ``<``…, ``in`` a list, ``contains`` or ``matches``."""

    __slots__ = ("left", "op", "regex", "right")

    def __init__(self, op: str, left: Node, right: Node | tuple[Lit, ...],
                 regex: re.Pattern[str] | None = None, column: int = 1) -> None:
        self.op, self.left, self.right, self.regex = op, left, right, regex
        self.type, self.column = BOOL, column

    def eval(self, facts: Facts) -> object:
        left = self.left.eval(facts)
        if isinstance(self.right, tuple):
            return left is not None and any(left == item.value for item in self.right)
        if self.regex is not None:
            return isinstance(left, str) and self.regex.search(left) is not None
        right = self.right.eval(facts)
        if left is None or right is None:
            return self.op == "!="
        if self.op == "==":
            return left == right
        if self.op == "!=":
            return left != right
        if self.op == "contains":
            return isinstance(left, str) and isinstance(right, str) and right in left
        return _ORDER[self.op](left, right)

    def __str__(self) -> str:
        if isinstance(self.right, tuple):
            return f"({self.left} in [{', '.join(map(str, self.right))}])"
        return f"({self.left} {self.op} {self.right})"


class Rule:
    """A compiled rule; ``str(rule)`` is its canonical, fully parenthesised source."""

    __slots__ = ("node", "source")

    def __init__(self, source: str, node: Node) -> None:
        self.source, self.node = source, node

    def matches(self, facts: Facts) -> bool:
        """Whether the request described by ``facts`` satisfies the rule; never raises."""
        return self.node.eval(facts) is True

    def __str__(self) -> str:
        return str(self.node)

    def __repr__(self) -> str:
        return f"Rule({self.source!r})"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    def fail(self, message: str, column: int) -> RuleError:
        return RuleError(message, self.text, column)

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, kind: str, value: str) -> bool:
        token = self.tokens[self.pos]
        return token.kind == kind and token.value == value

    def expect(self, kind: str, value: str, what: str) -> Token:
        if not self.at(kind, value):
            raise self.fail(f"expected {what}", self.peek().column)
        return self.take()

    def nest(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"rule nested deeper than {MAX_DEPTH} levels", column)

    def condition(self, node: Node, where: str) -> Node:
        if node.type != BOOL:
            raise self.fail(f"{where} needs a true/false condition, got a {node.type}", node.column)
        return node

    def parse(self) -> Node:
        node = self.expr()
        if self.peek().kind != "end":
            token = self.peek()
            raise self.fail(f"unexpected {token.value!r}", token.column)
        return self.condition(node, "a rule")

    def expr(self) -> Node:
        return self.chain("or", self.conjunction)

    def conjunction(self) -> Node:
        return self.chain("and", self.negation)

    def chain(self, op: str, operand: Callable[[], Node]) -> Node:
        items = [operand()]
        while self.at("kw", op):
            self.take()
            items.append(operand())
        if len(items) == 1:
            return items[0]
        return Chain(op, [self.condition(item, f"'{op}'") for item in items])

    def negation(self) -> Node:
        if not self.at("kw", "not"):
            return self.comparison()
        column = self.take().column
        self.nest(column)
        operand = self.condition(self.negation(), "'not'")
        self.depth -= 1
        return Not(operand, column)

    def comparison(self) -> Node:
        left = self.operand()
        token = self.peek()
        op = str(token.value)
        if not ((token.kind == "op" and op in _COMPARE)
                or (token.kind == "kw" and op in ("in", "contains", "matches"))):
            return left
        self.take()
        node = self.compare(left, op, token.column)
        after = self.peek()
        if after.kind in ("op", "kw") and (after.value in _COMPARE
                                            or after.value in ("in", "contains", "matches")):
            raise self.fail("comparisons cannot be chained; add parentheses", after.column)
        return node

    def compare(self, left: Node, op: str, column: int) -> Node:
        if op == "in":
            return self.membership(left, column)
        if op == "matches":
            pattern = self.take()
            if pattern.kind != "str":
                raise self.fail("'matches' needs a string literal pattern", pattern.column)
            self.need(left, STR, op, column)
            try:
                regex = vet_regex(str(pattern.value))
            except ValueError as exc:
                raise self.fail(str(exc), pattern.column) from None
            return Binary(op, left, Lit(str(pattern.value), pattern.column), regex, column)
        right = self.operand()
        if op in _ORDER:
            self.need(left, NUM, op, column, right)
        elif op == "contains":
            self.need(left, STR, op, column, right)
        elif left.type != right.type:
            raise self.fail(f"'{op}' compares a {left.type} with a {right.type}", column)
        return Binary(op, left, right, column=column)

    def need(self, left: Node, kind: str, op: str, column: int, right: Node | None = None) -> None:
        for side in (left, right):
            if side is not None and side.type != kind:
                got = " and ".join(s.type for s in (left, right) if s is not None)
                raise self.fail(f"'{op}' needs {kind}s, got {got}", column)

    def membership(self, left: Node, column: int) -> Node:
        self.expect("op", "[", "a list literal like [\"a\", \"b\"] after 'in'")
        items: list[Lit] = []
        while not self.at("op", "]"):
            if items:
                self.expect("op", ",", "',' or ']'")
            token = self.take()
            if token.kind not in ("str", "num"):
                raise self.fail("list items must be string or number literals", token.column)
            item = Lit(token.value, token.column)
            if item.type != left.type:
                raise self.fail(f"'in' looks for a {left.type} in a list holding a {item.type}",
                                token.column)
            items.append(item)
        self.take()
        return Binary("in", left, tuple(items), column=column)

    def operand(self) -> Node:
        token = self.take()
        if token.kind in ("str", "num"):
            return Lit(token.value, token.column)
        if token.kind == "kw" and token.value in ("true", "false"):
            return Lit(token.value == "true", token.column)
        if token.kind == "op" and token.value == "(":
            self.nest(token.column)
            node = self.expr()
            self.expect("op", ")", "')'")
            self.depth -= 1
            return node
        if token.kind == "op" and token.value == "[":
            raise self.fail("a list literal may only follow 'in'", token.column)
        if token.kind == "name":
            name = str(token.value)
            if name in FACTS:
                return Fact(name, token.column)
            if name in LOOKUPS:
                self.expect("op", "(", f"'(' after {name}")
                key = self.take()
                if key.kind != "str":
                    raise self.fail(f"{name}() takes a string literal", key.column)
                self.expect("op", ")", "')'")
                return Lookup(name, str(key.value), token.column)
            known = ", ".join([*FACTS, 'header("…")', 'metadata("…")'])
            raise self.fail(f"unknown fact {name!r} (known: {known})", token.column)
        what = "end of rule" if token.kind == "end" else repr(token.value)
        raise self.fail(f"expected a value, got {what}", token.column)


def compile_rule(text: str) -> Rule:
    """Parse and type-check ``text`` once; the result is cheap to evaluate per request.

    Raises:
        RuleError: a syntax or type error, with its 1-based column and a caret line.
    """
    return Rule(text, _Parser(text).parse())
