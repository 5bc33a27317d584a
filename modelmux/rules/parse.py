"""The lexical half of the rule language: tokens, literals, regex vetting and ``RuleError``.

``tokenize`` turns rule text into tokens with 1-based columns; ``vet_regex`` refuses patterns
that risk catastrophic backtracking. The grammar, types and evaluation live in ``rules``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_RULE_LENGTH = 4096
MAX_PATTERN_LENGTH = 256
EXCERPT = 80
KEYWORDS = frozenset({"and", "or", "not", "in", "contains", "matches", "true", "false"})
OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}
_BRACES = re.compile(r"\{[0-9]*(?:,[0-9]*)?\}")


class RuleError(ValueError):
    """A rule that does not parse or type-check; ``column`` is 1-based, the excerpt ≤ 80 wide."""

    def __init__(self, message: str, text: str, column: int) -> None:
        self.message = message
        self.text = text
        self.column = column
        line = text.replace("\n", " ").replace("\t", " ")
        start = max(0, column - 1 - EXCERPT // 2)
        line, caret = line[start:start + EXCERPT], column - 1 - start
        super().__init__(f"{message} at column {column}\n  {line}\n  {' ' * caret}^")


@dataclass(frozen=True, slots=True)
class Token:
    """``kind`` is "num", "str", "name", "kw", "op" or "end"; ``column`` is 1-based."""

    kind: str
    value: str | float | int
    column: int


def _string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            esc = text[i + 1] if i + 1 < len(text) else ""
            if esc not in _ESCAPES:
                raise RuleError("unknown escape in string", text, i + 1)
            out.append(_ESCAPES[esc])
            i += 2
            continue
        out.append(c)
        i += 1
    raise RuleError("unterminated string", text, start + 1)


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an "end" token.

    Raises:
        RuleError: an unknown character, a bad string or number, or text over the length limit.
    """
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"rule longer than {MAX_RULE_LENGTH} characters", text, MAX_RULE_LENGTH)
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in " \t\r\n":
            i += 1
            continue
        column = i + 1
        if c in "\"'":
            value, i = _string(text, i)
            tokens.append(Token("str", value, column))
            continue
        m = _NUMBER.match(text, i)
        if m and (c != "-" or not tokens or tokens[-1].kind in ("op", "kw")):
            literal = m.group()
            number: float | int = (float(literal) if any(ch in literal for ch in ".eE")
                                   else int(literal))
            if isinstance(number, float) and number in (float("inf"), float("-inf")):
                raise RuleError("number out of range", text, column)
            if _NAME.match(text, m.end()):
                raise RuleError("a number cannot run into a name", text, m.end() + 1)
            tokens.append(Token("num", number, column))
            i = m.end()
            continue
        m = _NAME.match(text, i)
        if m:
            word = m.group()
            tokens.append(Token("kw" if word in KEYWORDS else "name", word, column))
            i = m.end()
            continue
        for op in OPERATORS:
            if text.startswith(op, i):
                tokens.append(Token("op", op, column))
                i += len(op)
                break
        else:
            raise RuleError(f"unexpected character {c!r}", text, column)
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def _skip_class(pattern: str, i: int) -> int:
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


def _quantifier(pattern: str, i: int) -> int:
    """Length of the quantifier at ``i`` (with a lazy/possessive suffix), or 0."""
    if i >= len(pattern):
        return 0
    n = 1 if pattern[i] in "*+?" else 0
    if not n:
        m = _BRACES.match(pattern, i)
        n = len(m.group()) if m and m.group() != "{}" else 0
    if n and i + n < len(pattern) and pattern[i + n] in "?+":
        n += 1
    return n


def _group_prefix(pattern: str, i: int) -> int:
    """Length of a group's ``?...`` prefix after ``(`` at ``i``; refuses back-references."""
    if not pattern.startswith("?", i):
        return 0
    rest = pattern[i + 1:]
    if rest.startswith(("P=", "(")):
        raise ValueError("back-references and conditionals are not allowed")
    if rest.startswith("P<"):
        return pattern.index(">", i) - i + 1 if ">" in rest else len(rest) + 1
    if rest.startswith(("<=", "<!")):
        return 3
    if rest[:1] in (":", "=", "!"):
        return 2
    if rest.startswith("#"):
        return pattern.find(")", i) - i if ")" in rest else len(rest) + 1
    j = i + 1
    while j < len(pattern) and pattern[j] not in ":)":
        j += 1
    if "x" in pattern[i + 1:j]:
        raise ValueError("the verbose flag (?x) is not allowed")
    return j - i + (1 if j < len(pattern) and pattern[j] == ":" else 0)


def vet_regex(pattern: str) -> re.Pattern[str]:
    """Compile ``pattern`` after the safety rule; the reason for a refusal is a ValueError.

    The rule: at most 256 characters; no back-references, conditionals or ``(?x)``; a
    quantified group may contain neither another quantifier nor an alternation (write
    ``(ab)+`` or ``[ab]+``, not ``(a+)+`` or ``(a|b)*``), which rules out nested quantifiers.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    stack: list[bool] = [False]  # per open group: contains a quantifier or alternation
    i = 0
    while i < len(pattern):
        c = pattern[i]
        risky_atom = False
        if c == "\\":
            if i + 1 < len(pattern) and pattern[i + 1] in "123456789g":
                raise ValueError("back-references are not allowed")
            i += 2
        elif c == "[":
            i = _skip_class(pattern, i)
        elif c == "(":
            i += 1
            i += _group_prefix(pattern, i)
            stack.append(False)
            continue
        elif c == ")":
            risky_atom = stack.pop() if len(stack) > 1 else False
            i += 1
        elif c == "|":
            stack[-1] = True
            i += 1
            continue
        else:
            i += 1
        q = _quantifier(pattern, i)
        if q:
            if risky_atom:
                raise ValueError("a quantified group may not contain a quantifier or alternation")
            stack[-1] = True
            i += q
        elif risky_atom:
            stack[-1] = True
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
