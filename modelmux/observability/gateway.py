"""What ModelMux measures, for ``GET /metrics`` in Prometheus text format 0.0.4.

``GatewayMetrics`` owns the families, ModelMux's own and the OpenTelemetry GenAI ones under
their Prometheus names (semantic conventions "Generative AI metrics": ``gen_ai.*`` with dots as
underscores and the unit as a suffix), and turns each finished request into samples. The route
(``api.metrics``) refreshes the gauges that are snapshots (connection pool, client
connections) and renders.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import TYPE_CHECKING

from modelmux.observability.access import status_of
from modelmux.observability.genai import GENAI_PROVIDERS, operation_of
from modelmux.observability.metrics import CONTENT_TYPE, Histogram, Registry, Series
from modelmux.observability.record import STREAMED, RequestRecord
from modelmux.observability.shared import SharedMetrics

if TYPE_CHECKING:
    from modelmux.routing.store import StoreStatus
    from modelmux.server.exchange import Exchange

DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0)
TOKEN_BUCKETS = tuple(float(4**power) for power in range(14))  # 1, 4, 16, ... 67108864
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5)
"""The OpenTelemetry-advised boundaries; overhead is ModelMux's own, 100 µs to 0.5 s."""

STATES = ("closed", "open", "half_open")
OTHER = "other"
MAX_EXTRA_MODELS = 100
MAX_ERROR_CODES = 50
MAX_LABEL_SETS = 1024

_GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")


class Bounded:
    """Label values as they come, until ``limit`` new ones were seen; then ``other``.

    Clients choose model names (``provider/model``, the ``*`` alias) and upstreams choose error
    codes, so each such label has a ceiling on how many series it can create.
    """

    def __init__(self, limit: int, known: Iterable[str] = ()) -> None:
        self._seen = set(known)
        self._room = limit

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if self._room <= 0:
            return OTHER
        self._room -= 1
        self._seen.add(value)
        return value


class GatewayMetrics:
    """The families of one ModelMux process and how a finished request updates them."""

    def __init__(self, version: str, known_models: Iterable[str] = ()) -> None:
        r = self.registry = Registry()
        self._model = Bounded(MAX_EXTRA_MODELS, known_models)
        self._upstream_model = Bounded(MAX_EXTRA_MODELS, known_models)
        self._code = Bounded(MAX_ERROR_CODES)
        self._labels: dict[tuple[str, str | None, str | None, str | None, str | None,
                                 str | None, int], _Labels] = {}
        self.shared: SharedMetrics | None = None  # serve --workers: totals across workers
        r.gauge("modelmux_build_info", "ModelMux version (value 1).", ("version",),
                merge="max").set((version,), 1)
        self.requests = r.counter(
            "modelmux_requests_total", "Requests answered, by route, model, provider and status "
            "(499: the client left before a response).", ("route", "model", "provider", "status"))
        self.in_flight = r.gauge("modelmux_requests_in_flight", "Requests being served now.")
        self.client_connections = r.gauge("modelmux_client_connections",
                                          "Open client connections.")
        self.overhead = r.histogram(
            "modelmux_overhead_seconds", "Time ModelMux itself spent on a chat request: total "
            "minus time waiting on the upstream, up to the response head for streams.",
            ("provider", "stream"), OVERHEAD_BUCKETS)
        self.upstream_duration = r.histogram(
            "modelmux_upstream_duration_seconds", "Upstream call from the first attempt to the "
            "end of its body, retries included.", ("provider", "model", "stream"),
            DURATION_BUCKETS)
        self.upstream_ttft = r.histogram(
            "modelmux_upstream_time_to_first_token_seconds", "Streams: from the first upstream "
            "attempt to the first chunk ready for the client.", ("provider", "model"),
            TTFT_BUCKETS)
        self.tokens = r.counter("modelmux_tokens_total", "Tokens the upstream reported, by type "
                                "(input or output).", ("model", "provider", "type"))
        self.cost = r.counter("modelmux_cost_usd_total", "USD spent upstream, from usage and "
                              "the price table (requests whose price is unknown add nothing).",
                              ("provider", "model", "team"))
        self.retries = r.counter("modelmux_upstream_retries_total",
                                 "Upstream attempts retried after a failure.", ("provider",))
        self.fallbacks = r.counter("modelmux_fallbacks_total",
                                   "Requests answered by a deployment other than the first tried.")
        self.hedges = r.counter("modelmux_hedges_total",
                                "Second attempts started because the first was slow to its "
                                "first byte.")
        self.limited = r.counter(
            "modelmux_deployment_limited_total", "Times a deployment was passed over (or "
            "waited for) because it was at its rpm, tpm or max_concurrent limit.",
            ("deployment",))
        self.deployment_state = r.gauge(
            "modelmux_deployment_state", "Circuit breaker state per deployment: 1 for the "
            "current state, 0 for the others; under --workers, the number of workers whose "
            "breaker is in that state.", ("deployment", "provider", "state"))
        self.deployment_in_flight = r.gauge(
            "modelmux_deployment_in_flight", "Requests in flight per deployment (all workers).",
            ("deployment", "provider"))
        self.state_up = r.gauge(
            "modelmux_state_up", "1 when the [state] backend holding the rate limits answers "
            "(always for memory; summed over workers), 0 during a Redis outage.", ("backend",))
        self.state_outages = r.counter(
            "modelmux_state_outages_total", "Times Redis stopped answering and rate limits "
            "fell back to each process's own share.")
        self.state_local = r.counter(
            "modelmux_state_local_decisions_total", "Rate-limit decisions made by this "
            "process alone because Redis was unreachable.")
        self.auth_failures = r.counter(
            "modelmux_auth_failures_total", "Refused credentials, by reason (missing, unknown, "
            "revoked, expired, jwt; throttled: an address that failed too often).", ("reason",))
        self.cache_requests = r.counter(
            "modelmux_cache_requests_total", "Chat and Messages requests by what the response "
            "cache did: hit, miss or bypass.", ("result",))
        self.cache_bytes = r.gauge("modelmux_cache_bytes",
                                   "Bytes held by the memory response cache.", merge="sum")
        self.cache_evictions = r.counter(
            "modelmux_cache_evictions_total", "Entries the memory response cache dropped to stay "
            "within max_bytes.")
        self.cache_errors = r.counter(
            "modelmux_cache_errors_total", "Response cache calls to Redis that failed (the "
            "request was served without the cache).")
        self.errors = r.counter("modelmux_upstream_errors_total",
                                "Failed upstream attempts, by error code.", ("provider", "code"))
        self.pool = {
            key: r.gauge(f"modelmux_upstream_pool_{key}", f"Upstream connection pool: {text}.",
                         ("origin",))
            for key, text in (("connections", "open connections"),
                              ("idle", "idle connections"),
                              ("in_use", "connections lent out"),
                              ("waiters", "requests queued for a connection"))
        }
        self.token_usage = r.histogram(
            "gen_ai_client_token_usage", "Number of input and output tokens used "
            "(OpenTelemetry gen_ai.client.token.usage).", (*_GENAI, "gen_ai_token_type"),
            TOKEN_BUCKETS)
        self.operation_duration = r.histogram(
            "gen_ai_client_operation_duration_seconds", "Upstream GenAI operation duration "
            "(OpenTelemetry gen_ai.client.operation.duration).", (*_GENAI, "error_type"),
            DURATION_BUCKETS)
        self.server_duration = r.histogram(
            "gen_ai_server_request_duration_seconds", "Chat request duration, to the last byte "
            "(OpenTelemetry gen_ai.server.request.duration).", (*_GENAI, "error_type"),
            DURATION_BUCKETS)
        self.server_ttft = r.histogram(
            "gen_ai_server_time_to_first_token_seconds", "Time to the first streamed chunk of a "
            "successful response (OpenTelemetry gen_ai.server.time_to_first_token).", _GENAI,
            TTFT_BUCKETS)

    def started(self) -> None:
        self.in_flight.inc()

    def observe(self, record: RequestRecord, exchange: Exchange, now_ns: int) -> None:
        """Count one finished request; its chat fields feed the chat and upstream families.

        The label tuples of a (route, model, provider, upstream model, mode, status) are
        worked out once (``_Labels``): the same few recur on every request.
        """
        self.in_flight.dec()
        status = status_of(exchange)
        key = (record.route, record.model, record.provider, record.provider_type,
               record.upstream_model, record.mode, status)
        labels = self._labels.get(key)
        if labels is None:
            labels = self._labels_of(key)
        self.requests.inc(labels.requests)
        if labels.served is None:
            return
        failed = status >= 400
        streamed = labels.streamed
        series = labels.h_duration or labels.hold("h_duration", self.server_duration,
                                                  labels.duration)
        value = (now_ns - exchange.started_ns) / 1e9  # observed inline: no call per family
        series.counts[bisect_left(series.bounds, value)] += 1
        series.total += value
        if streamed and not failed and exchange.head_ns:
            self.server_ttft.observe(labels.served,
                                     (exchange.head_ns - exchange.started_ns) / 1e9)
        if record.overhead_ns is not None:
            series = labels.h_overhead or labels.hold("h_overhead", self.overhead,
                                                      labels.overhead)
            value = record.overhead_ns / 1e9
            series.counts[bisect_left(series.bounds, value)] += 1
            series.total += value
        stats = record.stats
        if stats is None or not (stats.attempts or stats.tokens):
            return
        asked = labels.asked or labels.ask(self._upstream_model)
        provider = labels.provider
        for code in stats.errors:
            self.errors.inc((provider, self._code(code)))
        if stats.retries:
            self.retries.inc((provider,), stats.retries)
        if stats.attempts:
            seconds = stats.total_ns / 1e9
            series = labels.h_upstream or labels.hold("h_upstream", self.upstream_duration,
                                                      labels.upstream)
            series.counts[bisect_left(series.bounds, seconds)] += 1
            series.total += seconds
            if failed:
                error = stats.errors[-1] if stats.errors else str(status)
                self.operation_duration.observe((*asked, self._code(error)), seconds)
            else:
                series = labels.h_succeeded or labels.hold(
                    "h_succeeded", self.operation_duration, labels.succeed(self._code))
                series.counts[bisect_left(series.bounds, seconds)] += 1
                series.total += seconds
            if streamed and not failed:
                self.upstream_ttft.observe(labels.ttft, stats.wait_ns / 1e9)
        if record.cost_usd is not None:
            self.cost.inc((provider, asked[2], record.team or ""), record.cost_usd)
        tokens = stats.tokens
        if tokens is not None:
            given, taken = tokens
            self.tokens.inc(labels.tokens_in, given)
            series = labels.h_usage_in or labels.hold("h_usage_in", self.token_usage,
                                                      labels.use())
            series.counts[bisect_left(series.bounds, given)] += 1
            series.total += given
            self.tokens.inc(labels.tokens_out, taken)
            series = labels.h_usage_out or labels.hold("h_usage_out", self.token_usage,
                                                       labels.usage_out)
            series.counts[bisect_left(series.bounds, taken)] += 1
            series.total += taken

    def _labels_of(self, key: tuple[str, str | None, str | None, str | None, str | None,
                                    str | None, int]) -> _Labels:
        """The label tuples of ``key``, kept while fewer than ``MAX_LABEL_SETS`` are."""
        route, model_asked, provider_name, provider_type, _, mode, status = key
        provider = provider_name or ""
        model = self._model(model_asked) if provider_name and model_asked else ""
        labels = _Labels((route, model, provider, str(status)))
        if provider_name and provider_type is not None:
            system = GENAI_PROVIDERS.get(provider_type, provider_type)
            labels.serve(operation_of(route), system, model, provider, key[4] or "",
                         mode in STREAMED, str(status) if status >= 400 else "")
        if len(self._labels) < MAX_LABEL_SETS:
            self._labels[key] = labels
        return labels

    def refresh(self, pool: dict[str, dict[str, int]], connections: int,
                deployments: dict[str, dict[str, object]] | None = None,
                state: StoreStatus | None = None) -> None:
        """Set the snapshot gauges: ``pool`` is ``ConnectionPool.stats()``, ``deployments``
        is ``Router.snapshot()``, ``state`` the limit store's status."""
        self.client_connections.set((), connections)
        if state is not None:
            self.state_up.clear()
            self.state_up.set((state.backend,), int(state.up))
        self.deployment_state.clear()
        self.deployment_in_flight.clear()
        for ident, view in (deployments or {}).items():
            provider, breaker = str(view["provider"]), view["breaker"]
            state = breaker.get("state") if isinstance(breaker, dict) else None
            for name in STATES:
                self.deployment_state.set((ident, provider, name), int(name == state))
            in_flight = view["in_flight"]
            self.deployment_in_flight.set((ident, provider),
                                          in_flight if isinstance(in_flight, int) else 0)
        for key, gauge in self.pool.items():
            gauge.clear()
            name = "total" if key == "connections" else key
            for origin, counts in pool.items():
                gauge.set((origin,), counts.get(name, 0))

    def render(self) -> bytes:
        """This process's families, or with ``shared`` every worker's, added up."""
        if self.shared is None:
            return self.registry.render()
        return self.shared.merged(self.registry).render()


class _Labels:
    """The label tuples one kind of finished request counts under. The bounded labels
    (``upstream_model``, ``error_type``) are resolved on first need, as they were per request,
    so each ``Bounded`` sees the values in the same order."""

    __slots__ = ("asked", "duration", "h_duration", "h_overhead", "h_succeeded", "h_upstream",
                 "h_usage_in", "h_usage_out", "overhead", "provider", "requests", "served",
                 "stream", "streamed", "succeeded", "tokens_in", "tokens_out", "ttft", "upstream",
                 "upstream_model", "usage_in", "usage_out")

    def __init__(self, requests: tuple[str, ...]) -> None:
        self.requests = requests
        self.served: tuple[str, ...] | None = None  # set when a provider served (or failed)
        self.streamed = False
        self.asked: tuple[str, ...] | None = None
        self.succeeded: tuple[str, ...] | None = None
        self.usage_in: tuple[str, ...] | None = None
        self.h_duration = self.h_overhead = self.h_upstream = self.h_succeeded = None
        self.h_usage_in = self.h_usage_out = None

    def hold(self, slot: str, histogram: Histogram, labels: tuple[str, ...]) -> Series:
        """The series of ``labels`` in ``histogram``, kept in ``slot`` from its first use on
        (made at its first observation, as ``Histogram.observe`` would)."""
        series = histogram.series(labels)
        setattr(self, slot, series)
        return series

    def serve(self, operation: str, system: str, model: str, provider: str,
              upstream_model: str, streamed: bool, error_type: str) -> None:
        self.served = served = (operation, system, model)
        self.duration = (*served, error_type)
        self.provider, self.streamed = provider, streamed
        self.stream = stream = "true" if streamed else "false"
        self.overhead = (provider, stream)
        self.upstream = (provider, model, stream)
        self.ttft = (provider, model)
        self.upstream_model = upstream_model
        self.tokens_in = (model, provider, "input")
        self.tokens_out = (model, provider, "output")

    def ask(self, bounded: Bounded) -> tuple[str, ...]:
        assert self.served is not None
        self.asked = asked = (*self.served[:2], bounded(self.upstream_model))
        return asked

    def succeed(self, code: Bounded) -> tuple[str, ...]:
        assert self.asked is not None
        self.succeeded = succeeded = (*self.asked, code(""))
        return succeeded

    def use(self) -> tuple[str, ...]:
        assert self.asked is not None
        self.usage_in = usage_in = (*self.asked, "input")
        self.usage_out = (*self.asked, "output")
        return usage_in
