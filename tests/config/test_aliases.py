"""``[models]`` aliases in ``ModelIndex``: exact, ignoring case, ``*``; old behaviour unchanged."""

from __future__ import annotations

import pytest

from modelmux.config.providers import MockProviderConfig
from modelmux.errors import ModelNotFound
from modelmux.providers.mock import MockProvider
from modelmux.routing.models import ModelIndex

A = MockProvider(MockProviderConfig(name="a", models=["m1", "shared"]))
B = MockProvider(MockProviderConfig(name="b", models=["shared", "m2"]))


def test_without_aliases_nothing_changes() -> None:
    models = ModelIndex([A, B])
    assert models.resolve("shared") == (A, "shared")
    assert models.resolve("b/anything") == (B, "anything")
    assert models.public_models() == [("m1", "a"), ("shared", "a"), ("m2", "b")]
    with pytest.raises(ModelNotFound):
        models.resolve("M1")


def test_aliases_exact_ignoring_case_and_fallback() -> None:
    models = ModelIndex([A, B], [("public", "b/upstream-1", False), ("Nice", "m2", True),
                                 ("*", "a/default", False)])
    assert models.resolve("public") == (B, "upstream-1")
    assert models.resolve("nice") == (B, "m2") and models.resolve("NICE") == (B, "m2")
    assert models.resolve("PUBLIC") == (A, "default")  # public is case-sensitive: the * alias
    assert models.resolve("m1") == (A, "m1")
    assert models.public_models()[:2] == [("public", "b"), ("Nice", "b")]


def test_an_alias_wins_over_a_listed_model_of_the_same_name() -> None:
    assert ModelIndex([A, B], [("m1", "b/x", False)]).resolve("m1") == (B, "x")


def test_an_alias_to_nothing_falls_through() -> None:
    with pytest.raises(ModelNotFound):
        ModelIndex([A], [("x", "zzz/y", False)]).resolve("x")
