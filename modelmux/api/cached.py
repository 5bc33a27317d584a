"""The doors' side of the response cache: the ``x-modelmux-cache`` header, the capture of a
miss's answer as it goes to the client (``Tee``), and the replay of a hit.

A stream is captured as the exact bytes the client got (after any translation or buffering)
and a hit replays those bytes as a new stream: same text, tool calls, finish reason and usage
chunk. The capture holds at most ``max_entry_bytes``; past that the answer is not stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from modelmux.api.responses import JSON_HEADERS, SSE_HEADERS
from modelmux.cache.entry import JSON, SSE, Entry
from modelmux.pipeline.cache import LOOKUP, CacheDecision
from modelmux.pipeline.context import RequestContext

if TYPE_CHECKING:
    from modelmux.server.exchange import Exchange, Sink

CACHE_HEADER = b"x-modelmux-cache"
_STATUS = {"hit": b"hit", "miss": b"miss", "bypass": b"bypass"}


class Tee:
    """``exchange`` as a door writes an answer to it, keeping a copy of what was sent."""

    def __init__(self, exchange: Exchange, limit: int) -> None:
        self._exchange = exchange
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self.form = JSON
        self.over = False  # more than ``limit`` bytes: nothing kept
        self.ended = False  # the answer went out whole (a stream's end was sent)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._exchange, name)

    @property
    def complete(self) -> bool:
        return self.ended and not self.over

    @property
    def body(self) -> bytes:
        return b"".join(self._parts)

    def keep(self, data: bytes) -> None:
        if self.over or not data:
            return
        self._size += len(data)
        if self._size > self._limit:
            self.over = True
            self._parts.clear()
            return
        self._parts.append(data)

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
                      ) -> None:
        self.keep(body)
        await self._exchange.respond(status, headers, body)
        self.ended = True

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.form = SSE
        await self._exchange.start(status, headers)

    async def write(self, data: bytes) -> None:
        self.keep(data)
        await self._exchange.write(data)

    def sink(self) -> TeeSink | None:
        inner = self._exchange.sink()
        return None if inner is None else TeeSink(inner, self)

    async def end(self) -> None:
        await self._exchange.end()
        self.ended = True


class TeeSink:
    """The exchange's ``Sink`` for a spliced stream, keeping a copy in its ``Tee``."""

    __slots__ = ("_sink", "_tee")

    def __init__(self, sink: Sink, tee: Tee) -> None:
        self._sink = sink
        self._tee = tee

    def push(self, data: bytes) -> bool:
        self._tee.keep(data)
        return self._sink.push(data)

    async def drain(self) -> None:
        await self._sink.drain()


def begin(exchange: Exchange, ctx: RequestContext, limit: int) -> Exchange:
    """After the lookup missed (or was bypassed): the header, and the exchange for the door to
    answer through (a ``Tee`` when the answer is to be stored)."""
    lookup: CacheDecision | None = ctx.state.get(LOOKUP)
    if lookup is None:
        return exchange
    exchange.extra_headers.append((CACHE_HEADER, _STATUS[lookup.status]))
    if not lookup.store:
        return exchange
    tee = lookup.capture = Tee(exchange, limit)
    return cast("Exchange", tee)


async def replay(exchange: Exchange, ctx: RequestContext, entry: Entry) -> None:
    """Answer ``ctx`` with a stored answer: the same JSON body, or the same event stream."""
    record = ctx.record
    record.provider = record.provider_type = "cache"
    record.upstream_model = entry.model or None
    hit = (CACHE_HEADER, b"hit")
    if entry.form == JSON:
        ctx.answer = entry.body
        await exchange.respond(200, [*JSON_HEADERS, hit], entry.body)
        return
    await exchange.start(200, [*SSE_HEADERS, hit])
    await exchange.write(entry.body)
    await exchange.end()
