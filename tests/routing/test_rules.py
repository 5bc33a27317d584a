"""The rule language: parsing, precedence, errors with columns, types, evaluation, regex vetting."""

from __future__ import annotations

import pytest

from modelmux.rules.compiler import RuleError, compile_rule
from modelmux.rules.parse import MAX_RULE_LENGTH, vet_regex

FACTS = {"model": "gpt-4o", "stream": True, "prompt_tokens": 1200, "max_tokens": 256,
         "has_tools": False, "has_images": True, "user": "alice", "key": "team-a",
         "headers": {"x-tier": "gold"}, "metadata": {"env": "prod", "n": 3}}


@pytest.mark.parametrize(("text", "canonical"), [
    ("stream or has_tools and has_images", "(stream or (has_tools and has_images))"),
    ("(stream or has_tools) and has_images", "((stream or has_tools) and has_images)"),
    ("not stream and has_tools", "((not stream) and has_tools)"),
    ('not model == "a"', '(not (model == "a"))'),
    ("stream and stream and stream", "(stream and stream and stream)"),
    ('model in ["a", "b"]', '(model in ["a", "b"])'),
    ("prompt_tokens >= -3.5", "(prompt_tokens >= -3.5)"),
    ("max_tokens in []", "(max_tokens in [])"),
    ("header('X-Tier') == 'gold'", '(header("x-tier") == "gold")'),
    ('(1 < 2) == true', "((1 < 2) == true)"),
    ('user contains "a\\"b\\\\"', '(user contains "a\\"b\\\\")'),
])
def test_precedence_and_canonical_form(text: str, canonical: str) -> None:
    rule = compile_rule(text)
    assert str(rule) == canonical
    assert str(compile_rule(canonical)) == canonical


@pytest.mark.parametrize(("text", "expected"), [
    ('model == "gpt-4o" and stream', True),
    ('model != "gpt-4o"', False),
    ("prompt_tokens > 1000 and max_tokens <= 256", True),
    ("has_tools or not has_images", False),
    ('key in ["team-a", "team-b"]', True),
    ("prompt_tokens in [1, 1200.0]", True),
    ('model contains "4o"', True),
    ('model matches "^gpt-[0-9]"', True),
    ('model matches "^claude"', False),
    ('header("X-TIER") == "gold"', True),
    ('header("x-missing") == ""', False),
    ('header("x-missing") != "gold"', True),
    ('metadata("env") == "prod"', True),
    ('metadata("n") == "3"', False),  # a non-string metadata value is absent
])
def test_evaluation(text: str, expected: bool) -> None:
    assert compile_rule(text).matches(FACTS) is expected


def test_absent_and_mistyped_facts() -> None:
    rule = compile_rule('model == "a"')
    assert not rule.matches({})
    assert not rule.matches({"model": 3})
    assert compile_rule('model != "a"').matches({})
    assert not compile_rule("max_tokens > 0 or max_tokens <= 0").matches({"max_tokens": None})
    assert not compile_rule("prompt_tokens > 0").matches({"prompt_tokens": True})
    assert compile_rule("not stream").matches({"stream": "yes"})
    assert not compile_rule('header("a") == "b"').matches({"headers": ["a"]})


@pytest.mark.parametrize(("text", "column", "fragment"), [
    ("model > 3", 7, "'>' needs numbers, got string and number"),
    ('prompt_tokens == "3"', 15, "compares a number with a string"),
    ("stream and model", 12, "needs a true/false condition, got a string"),
    ("not prompt_tokens", 5, "'not' needs a true/false"),
    ("model", 1, "a rule needs a true/false condition"),
    ('model in ["a", 1]', 16, "list holding a number"),
    ("model in model", 10, "a list literal"),
    ('["a"] == model', 1, "may only follow 'in'"),
    ('model == "a" == "b"', 14, "cannot be chained"),
    ("model == ", 10, "expected a value, got end of rule"),
    ("(stream", 8, "expected ')'"),
    ("stream)", 7, "unexpected ')'"),
    ("modle == 1", 1, "unknown fact 'modle'"),
    ('model == "abc', 10, "unterminated string"),
    ('model == "a\\q"', 12, "unknown escape"),
    ("stream & has_tools", 8, "unexpected character '&'"),
    ("header(x) == 1", 8, "takes a string literal"),
    ("model matches model", 15, "string literal pattern"),
    ('model matches "(a+)+$"', 15, "quantified group"),
    ('model matches "("', 15, "invalid regular expression"),
    ("prompt_tokens > 1e999", 17, "out of range"),
    ("prompt_tokens > 3abc", 18, "run into a name"),
    ("", 1, "expected a value"),
])
def test_errors_carry_column_and_caret(text: str, column: int, fragment: str) -> None:
    with pytest.raises(RuleError) as info:
        compile_rule(text)
    err = info.value
    assert err.column == column, str(err)
    assert fragment in err.message, str(err)
    lines = str(err).splitlines()
    assert lines[0].endswith(f"at column {column}")
    assert lines[2].index("^") - 2 == column - 1


def test_nesting_and_length_limits() -> None:
    with pytest.raises(RuleError, match="nested deeper"):
        compile_rule("(" * 100 + "stream" + ")" * 100)
    with pytest.raises(RuleError, match="nested deeper"):
        compile_rule("not " * 100 + "stream")
    with pytest.raises(RuleError, match="longer than"):
        compile_rule("stream or " * (MAX_RULE_LENGTH // 10 + 1) + "stream")
    long_chain = " and ".join(["stream"] * 300)  # flat: evaluation does not recurse
    assert compile_rule(long_chain).matches({"stream": True})


@pytest.mark.parametrize("pattern", [
    "^gpt-4", "claude-3-(opus|sonnet)", "(ab)+", "[a-z]+-v[0-9]{1,3}", "(?i)^mini", r"\d+\.\d+",
    "(?P<x>ab)c", "(?:ab){2}", "a(?=b)", "(?#note)x",
])
def test_safe_patterns_pass(pattern: str) -> None:
    vet_regex(pattern)


@pytest.mark.parametrize("pattern", [
    "(a+)+", "(a*)*b", "(a|aa)+", "((ab)*c)+", "(a{2,})*", r"(\w+\s?)+$", "(a)\\1",
    "(?P<x>a)(?P=x)", "(?x)(a # )\n+)+", "a" * 257, "(a?)+",
])
def test_risky_patterns_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        vet_regex(pattern)
