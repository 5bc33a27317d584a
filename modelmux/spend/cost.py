"""The cost of one answer: its usage times its model's price. Pure.

Input tokens follow OpenAI's convention: ``input`` counts every prompt token, the cache reads and
cache writes among them (the providers' usage is normalised to that before it gets here), and
each part is charged at its own rate, the plain input rate where a provider has none.
"""

from __future__ import annotations

from modelmux.spend.prices import Price

__all__ = ["cost_usd", "format_cost"]

MTOK = 1_000_000.0


def cost_usd(price: Price, input_tokens: int, output_tokens: int,
             cache: tuple[int, int] | None = None) -> float:
    """USD for that usage at ``price``; ``cache`` is (cache read, cache write), within input."""
    read, write = cache if cache is not None else (0, 0)
    plain = max(input_tokens - read - write, 0)
    cached = price.cached_input if price.cached_input is not None else price.input
    writes = price.cache_write if price.cache_write is not None else price.input
    return (plain * price.input + read * cached + write * writes
            + output_tokens * price.output) / MTOK


def format_cost(usd: float) -> bytes:
    """The ``x-modelmux-cost-usd`` value: decimal, ten places, trailing zeros dropped."""
    text = b"%.10f" % usd
    text = text.rstrip(b"0")
    return text + b"0" if text.endswith(b".") else text
