"""``GET /metrics``: refresh the snapshot gauges and render ``GatewayMetrics``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.api.caller import caller, require_role
from modelmux.observability.metrics import CONTENT_TYPE
from modelmux.tenancy.access import METRICS_ROLES

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange


async def scrape(app: Services, exchange: Exchange) -> None:
    """The metrics of this process, or of every worker under ``serve --workers``. With auth
    on, only for a viewer or admin credential unless ``[metrics] public = true``.

    Raises:
        AuthenticationFailed, RateLimited, PermissionDenied: auth is on, the metrics are not
            public, and the caller is not a viewer or an admin.
    """
    if app.auth is not None and not app.config.metrics.public:
        identity = await caller(app, exchange)
        assert identity is not None
        require_role(identity, METRICS_ROLES, "read the metrics")
    app.metrics.refresh(app.pool.stats(), exchange.open_connections(), app.router.snapshot(),
                        app.limits.status())
    await exchange.respond(200, [(b"content-type", CONTENT_TYPE)], app.metrics.render())
