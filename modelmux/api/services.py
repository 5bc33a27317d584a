"""What a route reads of the running ``app.App``: its configuration and the services it built.

Routes take a ``Services``, not the ``App`` class, so ``app`` (which imports the routes table)
and the routes import in one direction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from modelmux.api.access import Access
    from modelmux.api.static import StaticFiles
    from modelmux.config.overrides import Overrides
    from modelmux.api.token_estimate import TokenEstimator
    from modelmux.pipeline.cache import ResponseCache
    from modelmux.pipeline.call import Dispatcher
    from modelmux.config.schema import Config
    from modelmux.observability.calls import Watcher
    from modelmux.observability.events import EventHub
    from modelmux.observability.gateway import GatewayMetrics
    from modelmux.observability.record import RequestRecord
    from modelmux.pipeline.call import Dispatcher
    from modelmux.pipeline.stage import Pipeline
    from modelmux.providers.base import Provider
    from modelmux.routing.models import ModelIndex
    from modelmux.routing.router import Router
    from modelmux.routing.store import LimitStore
    from modelmux.server.exchange import Exchange
    from modelmux.spend.service import Spend
    from modelmux.tenancy.authn import Authenticator
    from modelmux.upstream import ConnectionPool


class Services(Protocol):
    """The app as its routes see it."""

    config: Config
    version: str
    started_at: float
    pool: ConnectionPool
    providers: list[Provider]
    models: ModelIndex
    metrics: GatewayMetrics
    limits: LimitStore
    router: Router
    dispatcher: Dispatcher
    pipeline: Pipeline
    watcher: Watcher | None
    spend: Spend | None
    auth: Authenticator | None
    cache: ResponseCache | None
    tokens: TokenEstimator
    ready: bool
    access: Access
    static: StaticFiles
    events: EventHub
    overrides: Overrides
    reload: Callable[[], Awaitable[tuple[bool, str]]] | None
    last_reload: dict[str, object] | None

    def request_id(self, exchange: Exchange) -> str: ...
    def record(self, exchange: Exchange) -> RequestRecord: ...


Route = Callable[["Services", "Exchange"], Awaitable[None]]
"""A route function: the app (as ``Services``) and the request's exchange; it answers."""
