"""``GET /admin/events``: the live snapshot as Server-Sent Events, about once a second.

Viewer role at least (``api.access``). The publisher is ``observability.events.EventHub``: it
samples only while some stream is open. The stream ends when the client leaves or the server
begins to stop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.api.admin_gate import gate
from modelmux.api.responses import SSE_HEADERS
from modelmux.codec.sse import encode_comment

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange


async def stream(app: Services, exchange: Exchange) -> None:
    """Send snapshots until the client leaves or the server stops."""
    await gate(app, exchange, "viewer")
    hub = app.events
    queue = hub.subscribe()
    try:
        await exchange.start(200, SSE_HEADERS)
        await exchange.write(encode_comment("modelmux admin events"))
        while (data := await queue.get()) is not None:
            await exchange.write(data)
        await exchange.end()
    finally:
        hub.unsubscribe(queue)
