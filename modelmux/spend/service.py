"""``Spend``: the spend parts one App builds from ``[[prices]]`` and ``[analytics]``.

It owns the price table and the account stage, and (when they are on) the spend log writer,
the budgets and the alerts, with their start and stop. None of it is built when
``[analytics.cost_tracking] enabled = false``.
"""

from __future__ import annotations

from modelmux.config.schema import Config
from modelmux.spend.account import AccountStage
from modelmux.spend.prices import PriceTable

__all__ = ["Spend", "build_spend"]


class Spend:
    """Prices and the account stage of one configuration."""

    def __init__(self, config: Config, prices: PriceTable | None = None) -> None:
        self.config = config
        self.prices = prices or PriceTable(config.prices)
        self.account = AccountStage(self.prices)

    def priced(self, model: str) -> bool:
        """True when upstream ``model`` has a price (so a stream is worth costing)."""
        return self.prices.lookup(model) is not None

    async def start(self) -> None:
        """Start the background parts (spend log writer, alerts)."""

    async def aclose(self) -> None:
        """Flush and stop the background parts."""


def build_spend(config: Config, prices: PriceTable | None = None) -> Spend | None:
    """The spend parts, or None when cost tracking is off."""
    if not config.analytics.cost_tracking.enabled:
        return None
    return Spend(config, prices)
