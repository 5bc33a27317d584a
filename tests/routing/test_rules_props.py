"""Property tests: random typed ASTs print, re-parse to the same canonical form, and agree."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.rules.compiler import Binary, Chain, Fact, Lit, Lookup, Node, Not, compile_rule
from modelmux.rules.parse import vet_regex

WORDS = ["", "a", "gpt-4o", "claude", 'q"uote', "back\\slash", "x y", "é"]
PATTERNS = ["^gpt", "o$", "[a-c]+", "(ab)+", "^$", "\\d"]
text = st.one_of(st.sampled_from(WORDS), st.text(max_size=6))
number = st.one_of(st.integers(-50, 50),
                   st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))

str_expr: st.SearchStrategy[Node] = st.one_of(
    text.map(Lit),
    st.sampled_from(["model", "user", "key"]).map(Fact),
    st.builds(Lookup, st.sampled_from(["header", "metadata"]), st.sampled_from(["a", "b"])),
)
num_expr: st.SearchStrategy[Node] = st.one_of(
    number.map(Lit), st.sampled_from(["prompt_tokens", "max_tokens"]).map(Fact))


def _binary(op: str, left: Node, right: Node) -> Node:
    return Binary(op, left, right)


leaf: st.SearchStrategy[Node] = st.one_of(
    st.booleans().map(Lit),
    st.sampled_from(["stream", "has_tools", "has_images"]).map(Fact),
    st.builds(_binary, st.sampled_from(["==", "!=", "contains"]), str_expr, str_expr),
    st.builds(_binary, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), num_expr, num_expr),
    st.builds(lambda left, items: Binary("in", left, tuple(Lit(i) for i in items)),
              str_expr, st.lists(text, max_size=3)),
    st.builds(lambda left, items: Binary("in", left, tuple(Lit(i) for i in items)),
              num_expr, st.lists(number, max_size=3)),
    st.builds(lambda left, p: Binary("matches", left, Lit(p), vet_regex(p)),
              str_expr, st.sampled_from(PATTERNS)),
)
conditions = st.recursive(leaf, lambda inner: st.one_of(
    inner.map(Not),
    st.builds(Chain, st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3)),
    st.builds(_binary, st.sampled_from(["==", "!="]), inner, inner),
), max_leaves=12)

scalar = st.one_of(st.none(), text, number, st.booleans())
facts = st.fixed_dictionaries({}, optional={
    "model": st.one_of(text, scalar), "user": text, "key": scalar,
    "stream": st.one_of(st.booleans(), scalar), "has_tools": st.booleans(),
    "has_images": scalar, "prompt_tokens": st.one_of(number, scalar), "max_tokens": number,
    "headers": st.dictionaries(st.sampled_from(["a", "b"]), text),
    "metadata": st.dictionaries(st.sampled_from(["a", "b"]), scalar),
})


@settings(max_examples=300, deadline=None)
@given(conditions, st.lists(facts, min_size=1, max_size=4))
def test_print_parse_round_trip(ast: Node, samples: list[dict[str, object]]) -> None:
    source = str(ast)
    rule = compile_rule(source)
    assert str(rule) == source
    for sample in samples:
        assert rule.matches(sample) is (ast.eval(sample) is True)


@settings(max_examples=200, deadline=None)
@given(conditions, facts)
def test_not_equal_is_negated_equal(ast: Node, sample: dict[str, object]) -> None:
    eq = compile_rule(f"({ast}) == true").matches(sample)
    ne = compile_rule(f"({ast}) != true").matches(sample)
    assert eq is not ne
