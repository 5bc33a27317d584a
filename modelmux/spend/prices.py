"""The price table: the bundled, dated prices (``prices.toml``) under the ``[[prices]]`` overrides.

Pure lookups, built once per configuration. A model name is matched exactly, then with the parts
that only name a version or a place dropped (``normal_names``), so Vertex, Bedrock and dated ids
find their base model. No match is "price unknown", never a price of 0.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources

from modelmux.config.features import PriceConfig

__all__ = ["BUNDLED_FILE", "Price", "PriceTable", "bundled", "normal_names"]

BUNDLED_FILE = "prices.toml"

_STEPS = (
    re.compile(r"^(?:us|eu|apac|global)\.(?=[a-z]+\.)"),  # Bedrock cross-region inference
    re.compile(r"^(?:anthropic|cohere|mistral|meta)\."),  # Bedrock vendor prefix
    re.compile(r"@.*$"),  # Vertex version: claude-3-5-sonnet-v2@20241022
    re.compile(r":\d+$"),  # Bedrock revision: ...-v2:0
    re.compile(r"-v\d+$"),  # ...-v2
    re.compile(r"-latest$"),
    re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{4})$"),  # a date
    re.compile(r"-\d{3}$"),  # Gemini's -001
)


def normal_names(model: str) -> Iterator[str]:
    """``model``, then each shorter name it stands for, most specific first."""
    yield model
    name = model.strip().lower()
    name = name.rsplit("/", 1)[-1]  # provider/model, models/gemini-...
    yield name
    for step in _STEPS:
        shorter = step.sub("", name)
        if shorter != name and shorter:
            name = shorter
            yield name


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens for one model; ``source`` says where it came from."""

    model: str
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    source: str = "config"

    def per_1k(self) -> tuple[float, float]:
        """(input, output) USD per thousand tokens, the routing strategies' unit."""
        return self.input / 1000.0, self.output / 1000.0


@dataclass(frozen=True, slots=True)
class Bundled:
    """The price file shipped in the package: its date and its prices by model."""

    as_of: str
    prices: dict[str, Price]


def bundled(text: str | None = None) -> Bundled:
    """The bundled table (``text`` replaces the packaged file, for tests).

    Raises:
        ValueError: the file does not parse or an entry lacks its input or output price.
    """
    if text is None:
        text = resources.files(__package__).joinpath(BUNDLED_FILE).read_text("utf-8")
    doc = tomllib.loads(text)
    as_of = str(doc.pop("as_of"))
    prices: dict[str, Price] = {}
    for vendor, models in doc.items():
        for model, entry in models.items():
            prices[model] = Price(model, float(entry["input"]), float(entry["output"]),
                                  entry.get("cached"), entry.get("cache_write"),
                                  f"bundled ({vendor}, as of {as_of})")
    return Bundled(as_of, prices)


class PriceTable:
    """The prices that apply: ``[[prices]]`` first, then the bundled table."""

    def __init__(self, overrides: Iterable[PriceConfig] = (),
                 table: Bundled | None = None) -> None:
        self.bundled = table if table is not None else bundled()
        self.overrides = {
            p.model: Price(p.model, p.input_per_mtok, p.output_per_mtok, p.cached_input_per_mtok,
                           p.cache_write_per_mtok, "config [[prices]]")
            for p in overrides}
        self._found: dict[str, Price | None] = {}

    @property
    def as_of(self) -> str:
        return self.bundled.as_of

    def lookup(self, model: str) -> Price | None:
        """The price of upstream ``model``, or None when no entry matches it."""
        try:
            return self._found[model]
        except KeyError:
            pass
        found = None
        for source in (self.overrides, self.bundled.prices):
            found = next((source[n] for n in normal_names(model) if n in source), None)
            if found is not None:
                break
        if len(self._found) < 10_000:  # client-chosen names: keep the memo bounded
            self._found[model] = found
        return found

    def entries(self) -> list[Price]:
        """Every price, overrides first, each model once."""
        seen = dict(self.overrides)
        for model, price in self.bundled.prices.items():
            seen.setdefault(model, price)
        return list(seen.values())
