"""``GET /metrics``: refresh the snapshot gauges and render ``GatewayMetrics``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.observability.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange


async def scrape(app: Services, exchange: Exchange) -> None:
    """The metrics of this process, or of every worker under ``serve --workers``."""
    app.metrics.refresh(app.pool.stats(), exchange.open_connections(), app.router.snapshot(),
                        app.limits.status())
    await exchange.respond(200, [(b"content-type", CONTENT_TYPE)], app.metrics.render())
