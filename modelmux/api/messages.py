"""``POST /v1/messages``: Anthropic's Messages API as a second front door over the pipeline.

The body is decoded into msgspec Structs (a missing or wrong-typed field is a 400 naming it),
translated into the internal call (OpenAI chat's shape) that the pipeline's stages and the call
stage see, and answered by the plan's deployments. A Claude deployment gets the client's own
body (``providers.claude_native``), with any change a middleware made to the internal call
carried into it (``messages_rebuild``), and its answer comes back as it is; any other provider
gets the internal call, and its answer or stream is translated back
(``translate.messages_answer``, ``translate.messages_events``). Errors on this door are
Anthropic's shape (``errors``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec

from modelmux.api.cached import begin, replay
from modelmux.api.chat import observed_headers, relay_as_is, run_observed, serve_call
from modelmux.api.ids import new_hex_id
from modelmux.api.messages_door import DROPPED_HEADER, anthropic_door, decode_anthropic, invalid
from modelmux.api.messages_rebuild import rebuilt_messages_body
from modelmux.api.responses import JSON_HEADERS, SSE_HEADERS
from modelmux.codec.sse import SSEDecoder, SSEProtocolError
from modelmux.errors import InternalError, ModelMuxError
from modelmux.pipeline.cache import CacheHit
from modelmux.pipeline.call import Served
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stream import Pieces, broke
from modelmux.providers.base import ChatCall, Provider, note_answer_usage
from modelmux.providers.claude_native import FORWARDED_HEADERS, MessagesCall
from modelmux.routing.models import DeploymentSpec
from modelmux.schemas.anthropic_request import MessagesRequest, fields_decoder, request_decoder
from modelmux.schemas.openai_chat import ChatCompletionRequest
from modelmux.schemas.openai_chat import request_decoder as chat_decoder
from modelmux.server.exchange import ClientDisconnected
from modelmux.translate.messages_answer import chat_to_messages_answer
from modelmux.translate.messages_errors import status_and_type
from modelmux.translate.messages_events import PING, MessagesEventStream
from modelmux.translate.messages_request import encode, messages_to_chat_request

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

log = logging.getLogger("modelmux.api")

DOOR = "anthropic.messages"
PING_SECONDS = 10.0
"""A translated stream quiet this long gets a ``ping`` event (Anthropic's own keep-alive)."""

Write = Callable[[bytes], Awaitable[None]]


class MessagesState:
    """What the door keeps in ``ctx.state[DOOR]``: the client's body, its decoded form, and
    the internal call as the door made it (a middleware that changes ``ctx.request`` leaves
    this one, so the door can tell)."""

    __slots__ = ("body", "dropped", "internal", "request")

    def __init__(self, body: bytes, request: MessagesRequest, dropped: bytes,
                 internal: ChatCompletionRequest) -> None:
        self.body = body
        self.request = request
        self.dropped = dropped
        self.internal = internal


def decode_messages(body: bytes) -> tuple[MessagesRequest, list[str]]:
    """The decoded request and its top-level member names.

    Raises:
        InvalidRequest: not a JSON object, or a missing or wrong-typed field (named).
    """
    if not body:
        raise invalid("The request body is empty; expected a JSON Messages request.")
    fields = decode_anthropic(body, fields_decoder)
    request = decode_anthropic(body, request_decoder)
    return request, list(fields)


@anthropic_door
async def create_message(app: Services, exchange: Exchange) -> None:
    """Answer one Messages request as a Message or an event stream, through the pipeline."""
    body = await exchange.read_body()
    request_id = app.request_id(exchange)
    if app.watcher is not None:
        app.watcher.request_body(request_id, body)
    request, fields = decode_messages(body)
    internal, dropped = messages_to_chat_request(request, fields, stream=bool(request.stream))
    internal_body = encode(internal)
    try:
        chat_request = chat_decoder.decode(internal_body)
    except msgspec.ValidationError as exc:
        raise invalid(f"The request cannot be expressed for this gateway: {exc}") from None
    record = app.record(exchange)
    record.model = request.model
    ctx = RequestContext(DOOR, chat_request, internal_body, exchange.headers, request_id, record,
                         response_headers=exchange.extra_headers)
    ctx.client = exchange.client
    ctx.state[DOOR] = MessagesState(body, request, dropped.header(), chat_request)
    ctx.streamed = bool(request.stream)
    await run_observed(app, exchange, ctx, _call)


def is_native(spec: DeploymentSpec) -> bool:
    """True when the deployment speaks Messages itself (Anthropic, Vertex and Bedrock Claude)."""
    provider = spec.provider
    return isinstance(provider, Provider) and provider.speaks_messages(spec.model)


async def _call(app: Services, exchange: Exchange, ctx: RequestContext) -> None:
    """The stages before the call, the call (every attempt), then the delivery."""
    record = ctx.record
    streamed = ctx.streamed
    try:
        await app.pipeline.before_call(ctx)
    except CacheHit as hit:
        record.model, record.mode = ctx.model, "standard" if streamed else "never"
        await replay(exchange, ctx, hit.entry)
        return
    if app.cache is not None:
        exchange = begin(exchange, ctx, app.cache.config.max_entry_bytes)
    state: MessagesState = ctx.state[DOOR]
    request, body = ctx.request, ctx.body
    record.model, record.mode = request.model, "standard" if streamed else "never"
    message_id, created = "msg_" + new_hex_id(), int(time.time())
    public_model = ctx.model
    forward = [(name, value) for name, value in ctx.headers if name in FORWARDED_HEADERS]
    native_body = state.body
    if request is not state.internal and any(map(is_native, ctx.plan)):
        assert isinstance(request, ChatCompletionRequest)  # replace_body keeps its kind
        native_body = rebuilt_messages_body(state.body, state.internal, request)

    def new_call(spec: DeploymentSpec) -> ChatCall:
        common = dict(model=spec.model, public_model=public_model, completion_id=message_id,
                      created=created, request_id=ctx.request_id, sent_stream=streamed)
        if is_native(spec):
            return MessagesCall(request, body, native_body, state.request.model, forward, **common)
        return ChatCall(request, body, **common)  # type: ignore[arg-type]

    served = await serve_call(app, exchange, ctx, new_call, streamed)
    provider, stats = served.provider, served.call.stats
    native = isinstance(served.call, MessagesCall)
    if state.dropped and not native:
        exchange.extra_headers.append((DROPPED_HEADER, state.dropped))
    try:
        if not streamed:
            answer = served.answer
            if stats.tokens is None:
                note_answer_usage(stats, answer)
            if not native:
                answer = chat_to_messages_answer(answer, model=public_model, message_id=message_id,
                                                 stop_sequences=state.request.stop_sequences)
            ctx.answer = answer
            if app.pipeline.heads:
                exchange.extra_headers += app.pipeline.answer_headers(ctx)
            await exchange.respond(200, [*JSON_HEADERS, *observed_headers(record, exchange, provider,
                                                                    stats)], answer)
            return
        await _stream(exchange, served, native, MessagesEventStream(
            model=public_model, message_id=message_id,
            stop_sequences=state.request.stop_sequences), record)
    finally:
        app.dispatcher.finish(served)


async def _stream(exchange: Exchange, served: Served, native: bool,
                  events: MessagesEventStream, record: object) -> None:
    """Relay the served stream: as it is (native), or translated with pings (the rest)."""
    provider, stats = served.provider, served.call.stats
    chunks, first = served.chunks, served.first
    assert chunks is not None
    try:
        await exchange.start(200, [*SSE_HEADERS, *observed_headers(record, exchange, provider,  # type: ignore[arg-type]
                                                             stats)])
        if native:
            await relay_as_is(exchange, chunks, first)
        else:
            await relay_translated(exchange.write, chunks, first, events, PING_SECONDS)
    except ClientDisconnected:
        raise
    except ModelMuxError as exc:
        log.warning("stream from %s failed after the first byte: %s", provider.name, exc.message)
        broke(stats, exc.code)
        await exchange.write(b"".join(events.fail(status_and_type(exc)[1], exc.message)))
    except Exception:
        log.exception("stream from %s failed after the first byte", provider.name)
        failure = InternalError("internal error while streaming")
        broke(stats, failure.code)
        await exchange.write(b"".join(events.fail("api_error", failure.message)))
    finally:
        await chunks.aclose()
    await exchange.end()


async def relay_translated(write: Write, chunks: Pieces, first: bytes,
                           events: MessagesEventStream, ping_seconds: float) -> None:
    """Write the OpenAI SSE ``chunks`` (from ``first`` on) as Anthropic events, with a ``ping``
    whenever the provider is quiet for ``ping_seconds``.

    One ``anext`` step is kept across pings, so a ping never drops a chunk; a step still
    running when this returns or raises is cancelled and awaited.
    """
    decoder = SSEDecoder()

    def translate(piece: bytes, end: bool = False) -> bytes:
        try:
            found = decoder.feed(piece) if not end else decoder.close()
        except SSEProtocolError as exc:
            return b"".join(events.fail("api_error", exc.message))
        out = [frame for event in found for frame in events.feed(event.data)]
        if end:
            out += events.close()
        return b"".join(out)

    async def send(data: bytes) -> None:
        if data:
            await write(data)

    await send(translate(first))
    pieces = aiter(chunks)
    step: asyncio.Future[bytes] | None = None
    try:
        while True:  # read on past the end so the provider can finish (and pool its connection)
            if step is None:
                step = asyncio.ensure_future(anext(pieces))
            done, _ = await asyncio.wait((step,), timeout=ping_seconds)
            if not done:
                await write(PING)
                continue
            finished, step = step, None
            try:
                piece = finished.result()
            except StopAsyncIteration:
                await send(translate(b"", end=True))
                return
            await send(translate(piece))
    finally:
        if step is not None:
            step.cancel()
            await asyncio.wait((step,))
            if not step.cancelled():
                step.exception()
