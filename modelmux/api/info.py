"""Read-only routes: ``GET /v1/models`` and ``GET /health``."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from modelmux.api.responses import send_json

if TYPE_CHECKING:
    from modelmux.api.app import App
    from modelmux.server.exchange import Exchange


async def list_models(app: App, exchange: Exchange) -> None:
    """OpenAI's model list: every model a configured provider serves."""
    created = int(app.started_at)
    data = [
        {"id": model, "object": "model", "created": created, "owned_by": provider}
        for model, provider in app.models.public_models()
    ]
    await send_json(exchange, 200, {"object": "list", "data": data})


async def health(app: App, exchange: Exchange) -> None:
    """200 with status and version once ready; 503 while starting."""
    body = {
        "status": "ok" if app.ready else "starting",
        "version": app.version,
        "uptime_seconds": round(time.time() - app.started_at, 3),
        "models": len(app.models.public_models()),
        "pid": os.getpid(),
    }
    await send_json(exchange, 200 if app.ready else 503, body)
