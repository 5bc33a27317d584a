"""The application state built at start-up, and the handler the server calls per request.

``App`` holds the providers, the model index, the router (live state per deployment) and its
dispatcher, CORS policy, metrics and access log, and dispatches each exchange through the
routes table after stamping its request id and attaching a ``RequestRecord``. Errors are
raised, not rendered here: the server turns a ``ModelMuxError`` into the OpenAI error
response, and the pipeline's finish stage (``pipeline.finish``) measures and logs the record
once the exchange is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from modelmux import __version__
from modelmux.api.access import Access
from modelmux.api.caller import describe_limits
from modelmux.api.cors import Cors
from modelmux.api.ids import new_hex_id
from modelmux.api.lane import ChatLane, lane_allowed
from modelmux.api.routes import Route, match
from modelmux.api.static import StaticFiles
from modelmux.cache.backend import build_backend
from modelmux.config.overrides import Overrides
from modelmux.api.token_estimate import TokenEstimator
from modelmux.config.schema import Config
from modelmux.errors import MethodNotAllowed, ModelMuxError, NotFound
from modelmux.observability.access import AccessLog
from modelmux.observability.bodies import BodyLog
from modelmux.observability.calls import Watcher
from modelmux.observability.events import EventHub
from modelmux.observability.gateway import GatewayMetrics
from modelmux.observability.live import LiveView
from modelmux.observability.record import RequestRecord
from modelmux.observability.tracing import build_tracer
from modelmux.pipeline.authenticate import KeyGate
from modelmux.pipeline.cache import ResponseCache
from modelmux.pipeline.call import Dispatcher
from modelmux.pipeline.finish import FinishStage
from modelmux.pipeline.plugins import build_middlewares
from modelmux.pipeline.route import RouteStage
from modelmux.pipeline.stage import Pipeline
from modelmux.providers.base import Provider
from modelmux.providers.registry import build_provider
from modelmux.routing.models import ModelIndex
from modelmux.routing.router import Router, compile_rules
from modelmux.server.exchange import Exchange
from modelmux.spend.prices import PriceTable
from modelmux.spend.schema import SPEND
from modelmux.spend.service import build_spend
from modelmux.state.build import build_limits, shared_breakers
from modelmux.tenancy.authn import Authenticator
from modelmux.upstream import ConnectionPool
from modelmux.upstream.budget import BodyBudget

log = logging.getLogger("modelmux.api")

_MAX_REQUEST_ID = 200


def _request_id(exchange: Exchange) -> bytes:
    """The client's ``x-request-id`` when it is sane, else a fresh one."""
    given = exchange.header(b"x-request-id")
    if given and len(given) <= _MAX_REQUEST_ID and all(33 <= c < 127 for c in given):
        return given
    return new_hex_id().encode()


def _body_log(config: Config) -> BodyLog | None:
    """The body log when ``debug_bodies`` is on and ``modelmux.bodies`` logs DEBUG now, else
    None: decided once per App (start-up, each reload), so a quiet log costs no request work."""
    if not config.logging.debug_bodies:
        return None
    bodies = BodyLog()
    if not bodies.enabled:
        log.warning("[logging] debug_bodies is on but the modelmux.bodies logger is not at "
                    "DEBUG: no body is logged (set [logging] level = \"debug\")")
        return None
    log.warning("[logging] debug_bodies is on: request and response bodies (prompts and "
                "answers) are logged at DEBUG, with credentials redacted")
    return bodies


def _cache_off() -> dict[str, object]:
    """The event stream's cache figures when the response cache is off."""
    return {"cache": None}


class App:
    """Everything a request needs, built once from the config."""

    def __init__(self, config: Config, *, metrics: GatewayMetrics | None = None,
                 budget: BodyBudget | None = None, overrides: Overrides | None = None,
                 events: EventHub | None = None, session_seed: bytes | None = None) -> None:
        """``metrics`` carries counters over from the App a reload replaces, ``budget`` its
        upstream buffer budget (one per process), ``events`` its admin event stream (whose
        subscribers stay connected), ``session_seed`` its keyless sessions' signing seed.
        ``overrides`` are the operator's runtime changes (read again now); without it none
        are kept.

        Raises:
            ConfigError: a provider or a middleware plugin cannot be built, or tracing is on
                without its extra.
        """
        self.config = config
        self.version = __version__
        self.started_at = time.time()
        self.ready = False
        self.pool = ConnectionPool(http1=config.server.http1, budget=budget)
        self.providers: list[Provider] = [build_provider(p, self.pool) for p in config.provider]
        routing = config.routing
        self.overrides = overrides or Overrides()
        self.overrides.read()
        if self.overrides.problem:
            log.warning("%s", self.overrides.problem)
        prices = PriceTable(config.prices)
        self.models = ModelIndex(self.providers, config.model_aliases(), routing.group,
                                 price_of=lambda model: (p.per_1k() if (p := prices.lookup(model))
                                                         else None),
                                 limits=self.overrides.limits())
        self.metrics = metrics or GatewayMetrics(self.version,
                                                 (m for m, _ in self.models.public_models()))
        self.limits = build_limits(config.state, config.server.workers, self.metrics)
        self.router = Router(policy=routing.breaker.policy(), strategy=routing.strategy,
                             rules=compile_rules(routing.rules), limits=self.limits)
        self.router.add(self.models.specs.values())  # live state per deployment, shown at once
        for ident in self.overrides.pinned_open():
            if ident in self.router.live:
                self.router.force(ident, "open")
        self.breakers = shared_breakers(config.state, self.limits, self.router)
        self.cors = Cors(config.server.cors)
        self.access_log = AccessLog(enabled=config.logging.access_log)
        self.finish = FinishStage(self.metrics, self.access_log, self._gauges)
        """Counts, logs and ends every request once its exchange is over (``pipeline.finish``)."""
        self._done = self.finish.finished  # every record's end hook, bound once
        self.tracer = build_tracer(config.telemetry, self.version)
        bodies = _body_log(config)
        self.watcher = Watcher(self.tracer, bodies) if self.tracer or bodies else None
        self.dispatcher = Dispatcher(self.router, routing, self.metrics, watcher=self.watcher)
        self.auth = self.build_auth()
        self.cache = self.build_cache()
        self.spend = build_spend(config, prices, self.limits, self.auth)
        self.tokens = TokenEstimator.of_config(config.provider)
        self.pipeline = self.build_pipeline()
        self.access = Access(config, seed=session_seed)
        self.static = StaticFiles()
        self.events = events or EventHub(LiveView(self.metrics), self.router.snapshot)
        self.events.deployments = self.router.snapshot
        self.events.extra = dict if self.cache is not None else _cache_off
        self.lane = ChatLane(self) if lane_allowed(self) else None
        """Answers chat requests from callbacks when nothing needs an await (``api.lane``)."""
        self.reload: Callable[[], Awaitable[tuple[bool, str]]] | None = None  # set by serve
        self.last_reload: dict[str, object] | None = None
        self.active = 0
        self._idle: asyncio.Event | None = None

    @classmethod
    def serving(cls, config: Config) -> App:
        """The App of a serving process: it keeps runtime overrides in the state folder."""
        return cls(config, overrides=Overrides.of_state_dir())

    def build_pipeline(self) -> Pipeline:
        """The stages every chat request runs, from this App's parts.

        Raises:
            ConfigError: a ``[[middleware]]`` plugin cannot be built.
        """
        stages = [*build_middlewares(self.config.middleware), RouteStage(self.models, self.router)]
        if self.auth is not None:  # authentication and the callers' limits, one stage
            stages.insert(0, KeyGate(self.auth, self.limits))
        if self.cache is not None:
            self.cache.models = self.models
            stages += self.cache.stages()
        if self.spend is not None:
            stages += self.spend.stages
        stages.append(self.finish)  # an account stage after the cost stage: the cost is logged
        return Pipeline(stages)

    def build_auth(self) -> Authenticator | None:
        """The authenticator when ``[auth] mode = "keys"``, else None (no stage is built).

        Raises:
            ConfigError: the store cannot be built from ``[auth]``.
        """
        auth = self.config.auth
        if auth.mode != "keys":
            return None
        from modelmux.config.paths import state_dir
        from modelmux.tenancy.open import open_store

        failures = self.metrics.auth_failures
        aliases = {name: target for name, target, _ in self.config.model_aliases()}
        store = open_store(auth, state_dir(), components=(SPEND,))  # the spend log shares it
        fanout = None
        if self.config.state.backend == "redis":
            from modelmux.tenancy.fanout import RedisFanout

            fanout = RedisFanout(self.config.state, store)
        return Authenticator(auth, store, admin_key=self.config.admin.key, aliases=aliases,
                             on_failure=lambda reason: failures.inc((reason,)), fanout=fanout)

    async def open(self) -> str | None:
        """Open what must be open before serving: the ``[auth]`` store (its migrations run).
        Returns why it cannot be opened (logged), or None."""
        if self.auth is None:
            return None
        try:
            await self.auth.open()
        except Exception as exc:  # noqa: BLE001  # sqlite3, asyncpg, OS errors alike
            log.error("cannot open the [auth] %s store: %s", self.config.auth.store, exc)
            return f"cannot open the [auth] store: {exc}"
        return None

    def build_cache(self) -> ResponseCache | None:
        """The response cache when ``[cache] enabled``, else None (its stages are not built).

        Raises:
            ConfigError: the Redis backend without the ``redis`` package.
        """
        config = self.config.cache
        if not config.enabled:
            return None
        errors = self.metrics.cache_errors
        backend = build_backend(config, self.config.state, lambda: errors.inc(()))
        return ResponseCache(config, backend, self.models, self.metrics)

    async def __call__(self, exchange: Exchange) -> None:
        if self.breakers is not None:
            self.breakers.start()  # reads the other replicas' open circuits from now on
        if self.spend is not None:
            self.spend.start()  # scheduled reports and the forecast check
        self.active += 1
        try:
            await self._route(exchange)(self, exchange)  # one frame less than an async dispatch
        except ModelMuxError:
            if self.auth is not None:
                describe_limits(self, exchange)  # a refusal before the limit check
            raise
        finally:
            self.active -= 1
            if not self.active and self._idle is not None:
                self._idle.set()

    async def retire(self, timeout: float) -> None:
        """After a reload: wait (up to ``timeout``) for this App's requests, then close it."""
        if self.active:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                log.warning("closing the previous configuration with %d request(s) in flight",
                            self.active)
        await self.aclose(last=False)

    def _route(self, exchange: Exchange) -> Route:
        """Stamp the request id, attach the record, count the request, apply CORS; the route
        to run (a preflight answers ``OPTIONS``).

        Raises:
            NotFound, MethodNotAllowed: no route for the path, or not for its method.
        """
        request_id = _request_id(exchange)  # open_request, written out: a call less
        exchange.extra_headers.append((b"x-request-id", request_id))
        matched = match(exchange.path)
        label, methods = matched if matched is not None else ("unmatched", None)
        record = exchange.observer = RequestRecord(request_id.decode("ascii"), label,
                                                   self._done)
        if self.tracer is not None:
            record.span = self.tracer.server_span(exchange, label)
        self.metrics.started()
        if self.metrics.shared is not None:
            self.finish.publish(exchange)
        origin = exchange.header(b"origin")
        cors_ok = origin is not None and self.cors.enabled and self.cors.allows(origin)
        if exchange.method == "OPTIONS" and methods is not None:
            requested = exchange.header(b"access-control-request-method")
            if cors_ok and requested is not None:
                assert origin is not None
                headers = self.cors.preflight_headers(origin, exchange.header(b"access-control-request-headers"))
            else:
                headers = [(b"allow", b", ".join(m.encode() for m in (*methods, "OPTIONS")))]

            async def preflight(_: object, exchange: Exchange) -> None:
                await exchange.respond(204, headers)
            return preflight
        if cors_ok:
            assert origin is not None
            exchange.extra_headers.extend(self.cors.response_headers(origin))
        if methods is None:
            raise NotFound(f"Invalid URL ({exchange.method} {exchange.path})", code="unknown_url")
        route = methods.get(exchange.method)
        if route is None and exchange.method == "HEAD":
            route = methods.get("GET")
        if route is None:
            allow = ", ".join((*methods, "OPTIONS"))
            raise MethodNotAllowed(
                f"Method {exchange.method} is not allowed for {exchange.path}; use {allow}.",
                headers=[(b"allow", allow.encode())],
            )
        return route

    def lane_open(self, exchange: Exchange, label: str) -> RequestRecord:
        """What ``__call__`` and ``_route`` do for a request the chat lane takes (with no
        tracing): count it active, stamp its request id, attach its record, count it in
        flight."""
        if self.breakers is not None:
            self.breakers.start()
        self.active += 1
        request_id = _request_id(exchange)
        exchange.extra_headers.append((b"x-request-id", request_id))
        record = exchange.observer = RequestRecord(request_id.decode("ascii"), label,
                                                   self._done)
        self.metrics.started()
        if self.metrics.shared is not None:
            self.finish.publish(exchange)
        return record

    def lane_close(self, exchange: Exchange, *, undo: bool = False) -> None:
        """The lane is done with ``exchange``; with ``undo`` (it gives the request back to the
        handler, nothing written) ``lane_open`` is undone, so the handler starts afresh."""
        self.active -= 1
        if not self.active and self._idle is not None:
            self._idle.set()
        if undo:
            exchange.extra_headers.clear()
            exchange.observer = None
            self.metrics.in_flight.dec()

    def request_id(self, exchange: Exchange) -> str:
        return exchange.extra_headers[0][1].decode()

    def record(self, exchange: Exchange) -> RequestRecord:
        """The request's record, for a route to fill in (a detached one if there is none)."""
        observer = exchange.observer
        if isinstance(observer, RequestRecord):
            return observer
        return RequestRecord(self.request_id(exchange), exchange.path)

    def _gauges(self, exchange: Exchange) -> None:
        """This process's gauges brought up to date, for a ``--workers`` publish."""
        self.metrics.refresh(self.pool.stats(), exchange.open_connections(),
                             self.router.snapshot(), self.limits.status())

    async def aclose(self, *, last: bool = True) -> None:
        """Close providers, pool and tracer. ``last`` (not a reload's retiring App) also writes
        the final ``--workers`` metrics snapshot: the metrics object lives on in the new App."""
        if last:
            self.events.close()
        if last and self.metrics.shared is not None:
            self.metrics.shared.close(self.metrics.registry)
        if self.spend is not None:
            await self.spend.aclose()
        for provider in self.providers:
            await provider.aclose()
        await self.pool.aclose()
        if self.breakers is not None:
            await self.breakers.aclose()
        await self.limits.aclose()
        if self.auth is not None:
            await self.auth.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        if self.tracer is not None:
            await self.tracer.aclose()
