"""The provider matrix in docs/providers.md says what the code does: every built-in type has a
row, and the embeddings, completions and count_tokens columns match each provider class."""

from __future__ import annotations

import re
from pathlib import Path

from modelmux.providers.anthropic import AnthropicProvider
from modelmux.providers.azure import AzureProvider
from modelmux.providers.base import Provider
from modelmux.providers.bedrock import BedrockProvider
from modelmux.providers.bedrock_claude import is_claude
from modelmux.providers.claude import ClaudeProvider
from modelmux.providers.cohere import CohereProvider
from modelmux.providers.gemini import GeminiProvider
from modelmux.providers.mock import MockProvider
from modelmux.providers.openai import HuggingFaceProvider, OpenAIProvider
from modelmux.providers.openai_compatible import OpenAICompatibleProvider
from modelmux.providers.registry import PROVIDERS
from modelmux.providers.vertex import VertexGemini, VertexProvider, is_gemini

DOCS = Path(__file__).parents[2] / "docs" / "providers.md"
_ROW = re.compile(r"^\| `(?P<type>\w+)`(?: \((?P<kind>[^)]*)\))? \|(?P<cells>.*)\|$")


def matrix() -> dict[tuple[str, str], dict[str, str]]:
    text = DOCS.read_text()
    table = text[text.index("## Provider matrix"):text.index("## Errors")]
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")][1:]
    rows = {}
    for line in lines[2:]:
        match = _ROW.match(line)
        assert match, line
        cells = [cell.strip() for cell in match["cells"].split("|")]
        rows[(match["type"], match["kind"] or "")] = dict(zip(header, cells, strict=True))
    return rows


CLASSES: dict[str, type[Provider]] = {
    "mock": MockProvider, "openai_compatible": OpenAICompatibleProvider,
    "anthropic": AnthropicProvider, "vertex": VertexProvider, "gemini": GeminiProvider,
    "cohere": CohereProvider, "openai": OpenAIProvider, "huggingface": HuggingFaceProvider,
    "azure": AzureProvider, "bedrock": BedrockProvider,
}


BEDROCK_SAMPLES = {"Claude models": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                   "other models": "meta.llama3-1-70b-instruct-v1:0"}


def test_every_type_has_a_row_that_matches_the_code() -> None:
    rows = matrix()
    assert set(CLASSES) == {config.__struct_config__.tag for config in PROVIDERS}
    assert {name for name, _ in rows} == set(CLASSES)
    for (name, kind), row in rows.items():
        cls = CLASSES[name]
        embeds = cls.embed is not Provider.embed
        if (name, kind) == ("vertex", "Claude models"):
            embeds = False  # Vertex embeds with Google's models only
        if kind == "Google models":
            assert name == "vertex"
            cls = VertexGemini
        assert row["embeddings"].startswith("yes") == embeds, (name, kind)
        completes = cls.complete_text is not Provider.complete_text
        assert (row["completions"] == "yes") == completes, (name, kind)
        native = issubclass(cls, ClaudeProvider) or cls.counts_tokens is not Provider.counts_tokens
        if name == "bedrock":  # Claude model ids count with Bedrock's CountTokens
            native = is_claude(BEDROCK_SAMPLES[kind])
        want = "native" if native else "estimate"
        if cls is CohereProvider:
            want = "native (text)"  # its tokenizer on the prompt's text
        elif issubclass(cls, OpenAICompatibleProvider):  # only where the config has `tokenize`
            config = next(c for c in PROVIDERS if c.__struct_config__.tag == name)
            tokenize = "tokenize" in config.__struct_fields__
            want = "estimate (native with `tokenize`)" if tokenize else "estimate"
        assert row["count_tokens"] == want, (name, kind)


def test_vertex_picks_the_publisher_by_model_name() -> None:
    assert is_gemini("gemini-2.0-flash") and is_gemini("gemini-2.5-pro-preview")
    assert not is_gemini("claude-sonnet-4@20250514")
