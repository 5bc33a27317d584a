"""Bedrock's ``gen_ai.provider.name`` is the semantic conventions' well-known ``aws.bedrock``."""

from __future__ import annotations

from modelmux.observability.genai import provider_name


def test_bedrock_provider_name() -> None:
    assert provider_name("bedrock") == "aws.bedrock"
