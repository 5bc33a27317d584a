"""The price table: bundled and dated, overridden by ``[[prices]]``, matched by base name."""

from __future__ import annotations

import re

import pytest

from modelmux.config.features import PriceConfig
from modelmux.spend.cost import cost_usd, format_cost
from modelmux.spend.prices import Price, PriceTable, bundled


def test_bundled_table_is_dated_and_covers_every_provider_family() -> None:
    table = bundled()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table.as_of)
    sources = {p.source.split(" ")[1].strip("(,") for p in table.prices.values()}
    assert {"openai", "anthropic", "gemini", "cohere"} <= sources
    assert all(p.input >= 0 and p.output >= 0 for p in table.prices.values())


@pytest.mark.parametrize("model, base", [
    ("gpt-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # its own, older price
    ("openai/gpt-4o-mini", "gpt-4o-mini"),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
    ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),  # Vertex
    ("claude-sonnet-4@20250514", "claude-sonnet-4"),
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),  # Bedrock
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
    ("claude-opus-4-1-20250805", "claude-opus-4-1"),
    ("models/gemini-2.5-pro", "gemini-2.5-pro"),
    ("gemini-1.5-pro-002", "gemini-1.5-pro"),
    ("command-r-plus-08-2024", "command-r-plus"),
])
def test_ids_of_every_platform_find_their_base_model(model: str, base: str) -> None:
    found = PriceTable().lookup(model)
    assert found is not None and found.model == base


def test_unknown_model_has_no_price_rather_than_zero() -> None:
    assert PriceTable().lookup("llama-3-8b") is None
    assert PriceTable().lookup("mock") is None


def test_config_prices_override_and_add() -> None:
    table = PriceTable([PriceConfig(model="gpt-4o", input_per_mtok=1.0, output_per_mtok=2.0),
                        PriceConfig(model="llama-3-8b", input_per_mtok=0.2, output_per_mtok=0.6,
                                    cached_input_per_mtok=0.05, cache_write_per_mtok=0.25)])
    gpt = table.lookup("gpt-4o-2024-08-06")
    assert gpt is not None and (gpt.input, gpt.output, gpt.source) == (1.0, 2.0,
                                                                      "config [[prices]]")
    assert table.lookup("llama-3-8b") == Price("llama-3-8b", 0.2, 0.6, 0.05, 0.25,
                                               "config [[prices]]")
    assert [p.model for p in table.entries()][:2] == ["gpt-4o", "llama-3-8b"]


def test_cost_charges_cache_reads_and_writes_at_their_own_rates() -> None:
    price = Price("m", input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    # 1000 input of which 600 read from the cache and 100 written to it; 200 output
    expected = (300 * 3.0 + 600 * 0.3 + 100 * 3.75 + 200 * 15.0) / 1e6
    assert cost_usd(price, 1000, 200, (600, 100)) == pytest.approx(expected)
    plain = Price("p", input=1.0, output=2.0)  # no cache rates: the input rate
    assert cost_usd(plain, 1000, 0, (600, 100)) == pytest.approx(1000 / 1e6)


def test_cost_header_text() -> None:
    assert format_cost(0.0) == b"0.0"
    assert format_cost(0.00123) == b"0.00123"
    assert format_cost(12.5) == b"12.5"


def test_routing_cost_strategy_uses_the_same_table() -> None:
    from modelmux.routing.models import ModelIndex

    class Ref:
        def __init__(self, name: str, models: list[str]) -> None:
            self.name, self.models = name, models

    table = PriceTable([PriceConfig(model="local", input_per_mtok=0.2, output_per_mtok=0.6)])
    index = ModelIndex([Ref("a", ["gpt-4o", "local", "unpriced"])],
                       price_of=lambda m: p.per_1k() if (p := table.lookup(m)) else None)
    assert (index.specs["a/gpt-4o"].input_cost_per_1k,
            index.specs["a/gpt-4o"].output_cost_per_1k) == (0.0025, 0.01)
    assert index.specs["a/local"].input_cost_per_1k == pytest.approx(0.0002)
    assert index.specs["a/unpriced"].input_cost_per_1k == 0.0


def test_hidden_usage_relay_drops_the_usage_chunk_and_keeps_the_counts() -> None:
    from modelmux.providers.chunk_relay import ChunkRelay, UsageHidden

    relay = UsageHidden(ChunkRelay("up", "m"))
    body = (b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"hi"}}],'
            b'"usage":null}\n\n'
            b'data: {"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,'
            b'"prompt_tokens_details":{"cached_tokens":3}}}\n\n'
            b'data: [DONE]\n\n')
    out = b"".join(relay.feed(body))
    assert b'"content":"hi"' in out and b"prompt_tokens" not in out
    assert out.endswith(b"data: [DONE]\n\n")
    assert relay.usage == (5, 2) and relay.cache == (3, 0)
