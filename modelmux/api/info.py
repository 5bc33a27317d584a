"""Read-only routes: ``GET /v1/models``, ``GET /v1/models/{id}`` and ``GET /health``."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote

from modelmux.api.caller import aliases_of, caller, known_caller, visible
from modelmux.api.responses import send_json
from modelmux.errors import ModelNotFound

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

MODEL_PREFIX = "/v1/models/"
"""``GET MODEL_PREFIX + id`` retrieves one model; the id may hold ``/``, raw or as ``%2F``."""


async def list_models(app: Services, exchange: Exchange) -> None:
    """OpenAI's model list: every model a configured provider serves that the caller may use.

    Raises:
        AuthenticationFailed, RateLimited: auth is on and the caller has no valid credential.
    """
    identity = await caller(app, exchange)
    created = int(app.started_at)
    models = app.models.public_models()
    if identity is not None:
        models = visible(identity, models, aliases_of(app))
    data = [
        {"id": model, "object": "model", "created": created, "owned_by": provider}
        for model, provider in models
    ]
    await send_json(exchange, 200, {"object": "list", "data": data})


async def retrieve_model(app: Services, exchange: Exchange) -> None:
    """OpenAI's "Models > Retrieve model": a name ``GET /v1/models`` lists, or a configured
    deployment's ``provider/model``, with the provider that serves it.

    Raises:
        ModelNotFound: the gateway lists no such model (the ``*`` alias does not count).
    """
    identity = await caller(app, exchange)
    model = unquote(exchange.path[len(MODEL_PREFIX):])
    if identity is not None and not visible(identity, [(model, "")], aliases_of(app)):
        raise ModelNotFound(
            f"The model `{model}` does not exist or is not served by this gateway.", param="model")
    owner = dict(app.models.public_models()).get(model)
    if owner is None:
        spec = app.models.specs.get(model)
        owner = spec.provider.name if spec is not None else None
    if owner is None:
        raise ModelNotFound(
            f"The model `{model}` does not exist or is not served by this gateway.", param="model")
    await send_json(exchange, 200, {"id": model, "object": "model",
                                    "created": int(app.started_at), "owned_by": owner})


async def health(app: Services, exchange: Exchange) -> None:
    """200 with status and version once ready; 503 while starting. With auth on, a caller
    without a valid credential learns only the status."""
    status = 200 if app.ready else 503
    if app.auth is not None and await known_caller(app, exchange) is None:
        await send_json(exchange, status, {"status": "ok" if app.ready else "starting"})
        return
    body = {
        "status": "ok" if app.ready else "starting",
        "version": app.version,
        "uptime_seconds": round(time.time() - app.started_at, 3),
        "models": len(app.models.public_models()),
        "pid": os.getpid(),
    }
    await send_json(exchange, status, body)
