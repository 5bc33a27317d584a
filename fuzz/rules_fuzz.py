"""Fuzz target for routing rules: every input parses or raises RuleError, nothing else.

A rule that parses must print to a canonical form that parses to itself, and must evaluate
to a bool on sample facts without raising. Runs under atheris
(``python fuzz/rules_fuzz.py [libFuzzer flags]``) or without it (``--smoke N``).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import fuzzing
from modelmux.rules.compiler import RuleError, compile_rule

SAMPLES: list[dict[str, object]] = [
    {},
    {"model": "gpt-4o", "stream": True, "prompt_tokens": 10, "max_tokens": 5, "user": "u",
     "key": "k", "has_tools": True, "has_images": False,
     "headers": {"x": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"}, "metadata": {"x": "v"}},
    {"model": 3, "stream": "yes", "prompt_tokens": float("nan"), "headers": ["x"], "metadata": 1},
]
_TOKENS = (
    "model", "stream", "prompt_tokens", "max_tokens", "has_tools", "has_images", "user", "key",
    'header("x")', 'metadata("x")', "header", "metadata", "and", "or", "not", "in", "contains",
    "matches", "true", "false", "==", "!=", "<", "<=", ">", ">=", "(", ")", "[", "]", ",", " ",
    '"gpt"', "'a'", '"(a+)+"', '"^[a-z]+$"', '"\\', '"', "1", "-2.5", "1e400", "3x", "&", "\n",
    "é", "\x00", '"(?x)(a# )\n+)+"', '"(ab)*"', '"(a|b)+"',
)


def check(text: str) -> None:
    """The invariant; anything but RuleError escaping is a finding too."""
    try:
        rule = compile_rule(text)
    except RuleError as err:
        if not 1 <= err.column <= len(text) + 1:
            raise AssertionError(f"column {err.column} outside {text!r}") from None
        return
    canonical = str(rule)
    if str(compile_rule(canonical)) != canonical:
        raise AssertionError(f"canonical form of {text!r} is not a fixpoint: {canonical!r}")
    for facts in SAMPLES:
        result = rule.matches(facts)
        if result is not True and result is not False:
            raise AssertionError(f"{text!r} did not evaluate to a bool")


def random_rule(rng: random.Random, depth: int = 0) -> str:
    """A mostly well-formed rule, so the evaluator gets exercised too."""
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return rng.choice((
            "stream", "has_tools", f"prompt_tokens {rng.choice('<>')}= {rng.randint(-9, 99)}",
            'model == "gpt-4o"', 'header("x") matches "^a+!$"', 'user in ["u", "v"]',
            'metadata("x") contains "v"', "max_tokens != 5", "true",
        ))
    if roll < 0.55:
        return f"not {random_rule(rng, depth + 1)}"
    if roll < 0.7:
        return f"({random_rule(rng, depth + 1)})"
    op = rng.choice(("and", "or", "==", "!="))
    return f"{random_rule(rng, depth + 1)} {op} {random_rule(rng, depth + 1)}"


def random_input(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return rng.randbytes(rng.randint(0, 80)).decode("utf-8", "replace")
    if roll < 0.5:
        return " ".join(rng.choice(_TOKENS) for _ in range(rng.randint(0, 25)))
    text = random_rule(rng)
    if text and rng.random() < 0.5:
        i = rng.randrange(len(text))
        text = text[:i] + rng.choice(("", rng.choice(_TOKENS))) + text[i + 1:]
    return text


def one_input(data: bytes) -> None:
    check(data.decode("utf-8", "replace"))


def smoke(count: int, seed: int = 0) -> int:
    return fuzzing.smoke("rules_fuzz", count, seed,
                         lambda rng: random_input(rng).encode(),
                         one_input)


if __name__ == "__main__":  # the rule modules are already imported above
    fuzzing.cli(__doc__, smoke, lambda: one_input, instrument="all")
