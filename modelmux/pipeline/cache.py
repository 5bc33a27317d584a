"""The cache lookup and cache store stages, and ``ResponseCache``, the state they share.

Lookup (before route): a request the cache may serve gets its key; a stored answer is a
``CacheHit`` (the door replays it; no later stage runs and no provider is called). A miss
makes the request the leader of its key: identical requests that miss while it runs wait for
it (single flight, within this process; at most ``FLIGHT_WAIT_SECONDS``) and then look again. Store (after account): the
leader's answer, captured by the door, is kept when it is a complete success; then its
waiters are released. Both stages are built only when ``[cache] enabled``.

``ctx.state["cache"]`` is the note later stages read (spend): ``status`` ("hit", "miss",
"bypass"), ``hit``, and on a hit the ``provider``, upstream ``model`` and ``usage`` (input,
output tokens, or None) of the call that produced the stored answer, i.e. what the hit saved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelmux.cache.backend import CacheBackend
from modelmux.cache.entry import JSON, SSE, Entry
from modelmux.cache.keys import deployment_set, directives, namespace, request_key
from modelmux.cache.memory import MemoryCache
from modelmux.cache.rules import CacheRules
from modelmux.cache.verify import storable
from modelmux.config.features import CacheConfig
from modelmux.errors import ModelNotFound
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Stage
from modelmux.routing.facts import request_facts
from modelmux.schemas.openai_chat import ChatCompletionRequest

if TYPE_CHECKING:
    from modelmux.observability.gateway import GatewayMetrics
    from modelmux.routing.models import ModelIndex

log = logging.getLogger("modelmux.cache")

DOORS = frozenset({"openai.chat", "anthropic.messages"})
"""The doors whose answers are cached (embeddings and legacy completions are not)."""
NOTE, LOOKUP = "cache", "cache.lookup"
FLIGHT_WAIT_SECONDS = 60.0
"""How long an identical miss waits for the leader before calling the provider itself (a
leader held up by a slow client or a stalled upstream does not hold its followers longer)."""
MAX_GROUPS = 1024
"""Resolved models remembered for keys; the memo is emptied when it grows past this."""


class CacheHit(Exception):
    """The lookup stage found ``entry``: the door answers with it and calls no provider."""

    def __init__(self, entry: Entry) -> None:
        super().__init__("cache hit")
        self.entry = entry


class CacheDecision:
    """One request's cache decision (``ctx.state["cache.lookup"]``); ``capture`` is set by
    the door when the answer is to be stored, and read back by the store stage."""

    __slots__ = ("capture", "key", "leader", "status", "store", "ttl")

    def __init__(self, status: str, key: str = "", ttl: float = 0.0, store: bool = False
                 ) -> None:
        self.status = status
        self.key = key
        self.ttl = ttl
        self.store = store
        self.leader = False
        self.capture: Any = None  # api.cached.Tee: .complete, .body, .form


class ResponseCache:
    """The backend, rules, metrics and in-flight misses of one App."""

    def __init__(self, config: CacheConfig, backend: CacheBackend, models: ModelIndex,
                 metrics: GatewayMetrics, clock: Callable[[], float] = time.time) -> None:
        """Raises:
            RuleError: a ``[[cache.rules]]`` entry does not compile.
        """
        self.config = config
        self.backend = backend
        self.models = models
        self.metrics = metrics
        self.clock = clock
        self.rules = CacheRules(config.rules)
        self.flights: dict[str, asyncio.Future[None]] = {}
        self.waiting = 0  # requests waiting for an identical miss to finish
        self.flight_wait = FLIGHT_WAIT_SECONDS
        self._groups: dict[str, bytes] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def stages(self) -> list[Stage]:
        return [CacheLookup(self), CacheStore(self)]

    def deployments(self, model: str) -> bytes:
        """The deployments serving ``model`` as ``keys.deployment_set`` gives them, memoised.

        Raises:
            ModelNotFound: nothing serves ``model``.
        """
        found = self._groups.get(model)
        if found is None:
            group = self.models.group(model)
            found = deployment_set((d.provider.name, d.model) for d in group.deployments)
            if len(self._groups) >= MAX_GROUPS:
                self._groups.clear()
            self._groups[model] = found
        return found

    def count(self, status: str) -> None:
        self.metrics.cache_requests.inc((status,))

    def finish(self, lookup: CacheDecision, entry: Entry | None) -> None:
        """The leader's answer is over: keep ``entry`` (if any), then release the waiters."""
        if entry is None:
            self._release(lookup)
            return
        backend = self.backend
        if isinstance(backend, MemoryCache):
            self._stored(backend.store(lookup.key, entry, lookup.ttl))
            self._release(lookup)
            return
        task = asyncio.ensure_future(self._put(lookup, entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _put(self, lookup: CacheDecision, entry: Entry) -> None:
        try:
            self._stored(await self.backend.put(lookup.key, entry, lookup.ttl))
        finally:
            self._release(lookup)

    def _stored(self, evicted: int) -> None:
        metrics = self.metrics
        if evicted > 0:
            metrics.cache_evictions.inc((), evicted)
        metrics.cache_bytes.set((), self.backend.bytes)

    def _release(self, lookup: CacheDecision) -> None:
        if lookup.leader:
            lookup.leader = False
            flight = self.flights.pop(lookup.key, None)
            if flight is not None and not flight.done():
                flight.set_result(None)

    def adopt(self, old: ResponseCache) -> bool:
        """After a reload: keep the previous App's memory entries when both use the memory
        backend (entries of changed deployments just never match again); True when kept."""
        mine, theirs = self.backend, old.backend
        if not (isinstance(mine, MemoryCache) and isinstance(theirs, MemoryCache)):
            return False
        theirs.max_bytes, theirs.max_entry_bytes = mine.max_bytes, mine.max_entry_bytes
        theirs.trim()
        self.backend, old.backend = theirs, mine
        return True

    async def command(self, arg: str) -> tuple[bool, str]:
        """The control socket's ``cache stats`` and ``cache clear`` (``modelmux cache``)."""
        if arg == "clear":
            return True, f"cleared {await self.clear()} entries"
        if arg in ("", "stats"):
            return True, "\n".join(f"{name}: {value}" for name, value in self.stats().items())
        return False, f"unknown cache command {arg!r}; known: stats, clear"

    async def clear(self) -> int:
        """Drop every stored answer; how many went."""
        count = await self.backend.clear()
        self.metrics.cache_bytes.set((), self.backend.bytes)
        return count

    def stats(self) -> dict[str, object]:
        return {**self.backend.stats(), "in_flight": len(self.flights), "waiting": self.waiting}

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        await self.backend.aclose()


def _note(ctx: RequestContext, status: str) -> None:
    ctx.state[NOTE] = {"status": status, "hit": False}


class CacheLookup(Stage):
    """Answers from the cache when it can (``CacheHit``); otherwise notes the key to store."""

    kind = "cache_lookup"
    name = "cache_lookup"

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    async def on_request(self, ctx: RequestContext) -> None:
        """Raises:
            CacheHit: a stored answer (the door replays it).
            InvalidRequest: a bad ``x-modelmux-cache-ttl`` (or a header a rule reads).
        """
        door = ctx.door
        request = ctx.request
        if door not in DOORS or not isinstance(request, ChatCompletionRequest):
            return
        cache = self.cache
        asked = directives(ctx.headers)
        rules = cache.rules
        if asked.no_store or (rules and not rules.allow(
                request_facts(request, ctx.body, ctx.headers))):
            ctx.state[LOOKUP] = CacheDecision("bypass")
            _note(ctx, "bypass")
            cache.count("bypass")
            return
        try:
            deployments = cache.deployments(request.model)
        except ModelNotFound:
            return  # the route stage answers 404
        space = namespace(ctx.identity, cache.config.namespace)
        original = ctx.state.get(door)
        bodies = (ctx.body,) if original is None else (getattr(original, "body", b""), ctx.body)
        key = request_key(space, door, SSE if ctx.streamed else JSON, deployments, *bodies)
        ttl = cache.config.ttl_seconds if asked.ttl is None else min(
            asked.ttl, cache.config.ttl_seconds)
        lookup = ctx.state[LOOKUP] = CacheDecision("miss", key, ttl, True)
        if not asked.no_cache:
            entry = await cache.backend.get(key)
            if entry is None:
                flight = cache.flights.get(key)
                if flight is not None:
                    cache.waiting += 1
                    try:
                        await asyncio.wait_for(asyncio.shield(flight), cache.flight_wait)
                    except TimeoutError:
                        pass
                    finally:
                        cache.waiting -= 1
                    entry = await cache.backend.get(key)
            if entry is not None:
                lookup.status, lookup.store = "hit", False
                ctx.state[NOTE] = {"status": "hit", "hit": True, "provider": entry.provider,
                                   "model": entry.model, "usage": entry.usage}
                cache.count("hit")
                raise CacheHit(entry)
        if key not in cache.flights:
            cache.flights[key] = asyncio.get_running_loop().create_future()
            lookup.leader = True
        _note(ctx, "miss")
        cache.count("miss")


class CacheStore(Stage):
    """Keeps the captured answer of a miss when it is a complete success."""

    kind = "cache_store"
    name = "cache_store"

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    def on_answer(self, ctx: RequestContext) -> None:
        lookup: CacheDecision | None = ctx.state.get(LOOKUP)
        if lookup is None or not lookup.key:
            return
        entry = None
        capture = lookup.capture
        if (lookup.store and capture is not None and ctx.status == 200 and ctx.error is None
                and capture.complete and storable(ctx.door, capture.form, capture.body)):
            record = ctx.record
            stats = record.stats
            tokens = stats.tokens if stats is not None else None
            entry = Entry(capture.form, capture.body, record.provider or "",
                          record.upstream_model or "",
                          (int(tokens[0]), int(tokens[1])) if tokens else None, self.cache.clock())
        self.cache.finish(lookup, entry)
