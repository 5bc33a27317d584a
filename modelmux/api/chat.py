"""``POST /v1/chat/completions``: validate, pick the provider, answer or stream.

When several providers serve the model, a failure before the first byte that another
deployment may not share (see ``routing.router.is_failover_error``) moves on to the next one in
config order; providers whose circuit breaker is open are skipped.

The request is decoded into msgspec Structs so a missing or wrong-typed field is a 400 naming
the field. ``modelmux.api.streaming`` picks JSON, standard or buffered SSE; this module runs it.
Streaming waits for the provider's first chunk before sending the response head, so failures
before the first byte still get their proper HTTP status. The response head carries ModelMux's
overhead so far, the provider and the number of upstream attempts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

import msgspec

from modelmux.api.responses import JSON_HEADERS, SSE_HEADERS, error_event
from modelmux.api.streaming import MODE_HEADER, Coalescer, choose_mode
from modelmux.errors import InternalError, InvalidRequest, ModelMuxError
from modelmux.observability.access import RequestRecord
from modelmux.providers.base import CallStats, ChatCall, Provider, usage_of
from modelmux.routing.router import is_failover_error
from modelmux.schemas.openai_chat import ChatCompletionRequest, request_decoder
from modelmux.server.exchange import ClientDisconnected, Headers

if TYPE_CHECKING:
    from modelmux.api.app import App
    from modelmux.server.exchange import Exchange

log = logging.getLogger("modelmux.api")

_AT = re.compile(r" - at `\$\.?(.*)`$")
_MISSING = re.compile(r"missing required field `([^`]*)`")
_UNSENDABLE = re.compile(r"[^\x20-\x7e]")

OVERHEAD_HEADER = b"x-modelmux-overhead-ms"
PROVIDER_HEADER = b"x-modelmux-provider"
ATTEMPTS_HEADER = b"x-modelmux-attempts"


def _param(message: str) -> str | None:
    """The field path named by a msgspec validation message, OpenAI style (``messages[0].role``)."""
    at = _AT.search(message)
    path = at.group(1) if at else ""
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None


def decode_request(body: bytes) -> ChatCompletionRequest:
    """Decode and validate a chat completion request body.

    Raises:
        InvalidRequest: not JSON, a wrong or missing field (named in ``param``), or no messages.
    """
    if not body:
        raise InvalidRequest("The request body is empty; expected a JSON chat completion request.",
                             code="invalid_json")
    try:
        request = request_decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise InvalidRequest(f"Invalid request: {message}", param=_param(message),
                             code="invalid_value") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not request.messages:
        raise InvalidRequest("`messages` must contain at least one message.", param="messages",
                             code="invalid_value")
    return request


async def create_chat_completion(app: App, exchange: Exchange) -> None:
    """Answer one chat request as JSON or SSE, as ``choose_mode`` decides."""
    body = await exchange.read_body()
    watcher = app.watcher  # tracing or debug_bodies; None when both are off
    if watcher is not None:
        watcher.request_body(app.request_id(exchange), body)
    request = decode_request(body)
    record = app.record(exchange)
    record.model = request.model
    settings = app.config.streaming
    asked = bool(request.stream)
    delivery, reason = choose_mode(
        settings, asked_stream=asked, user_agent=exchange.header(b"user-agent"),
        headers=exchange.headers, override=exchange.header(MODE_HEADER),
    )
    log.debug("stream mode %s for a stream=%s request (%s)", delivery, asked, reason)
    candidates = app.models.candidates(request.model)
    provider, upstream_model = candidates[0]
    record.provider, record.provider_type = provider.name, provider.type
    record.upstream_model, record.mode = upstream_model, delivery
    streamed = delivery != "never"
    if asked and not streamed:  # the provider is asked for, and the client gets, one JSON body
        request = msgspec.structs.replace(request, stream=False, stream_options=None)
    elif streamed and not asked:
        request = msgspec.structs.replace(request, stream=True)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    request_id = app.request_id(exchange)
    record.stats = stats = CallStats()  # shared by every attempt: attempts add up across providers
    router = app.router
    waited = 0  # time spent waiting on providers that failed
    failure: ModelMuxError | None = None
    answer, chunks, first = b"", None, b""
    for attempt in router.attempts([(p.name, (p, m)) for p, m in candidates]):
        provider, upstream_model = attempt.target
        record.provider, record.provider_type = provider.name, provider.type
        record.upstream_model = upstream_model
        call = ChatCall(request, body, model=upstream_model, public_model=request.model,
                        completion_id=completion_id, created=created, request_id=request_id,
                        sent_stream=asked)
        call.stats = stats
        try:
            if streamed:
                chunks = (provider.stream(call) if watcher is None
                          else watcher.stream(provider, call, record))
                try:
                    first = await anext(chunks)  # errors up to here still get a proper status
                except StopAsyncIteration:
                    raise InternalError(
                        f"provider {provider.name!r} produced an empty stream") from None
            else:
                answer = await (provider.complete(call) if watcher is None
                                else watcher.complete(provider, call, record))
        except ModelMuxError as exc:
            router.failed(attempt, exc)
            if not is_failover_error(exc):
                exchange.extra_headers += _upstream_headers(provider, stats)
                raise
            log.info("provider %s failed before the first byte (%s); falling back to the next "
                     "provider of the model, if any", provider.name, exc.code)
            failure, waited = exc, waited + stats.wait_ns
            continue
        except BaseException:
            router.released(attempt)
            raise
        router.succeeded(attempt)
        stats.wait_ns += waited
        failure = None
        break
    if failure is not None:
        exchange.extra_headers += _upstream_headers(provider, stats)
        raise failure
    if not streamed:
        stats.tokens = usage_of(answer)
        await exchange.respond(200, [*JSON_HEADERS, *_observed(record, exchange, provider, stats)],
                               answer)
        return
    assert chunks is not None
    coalescer = None
    if delivery == "buffered":
        clock = asyncio.get_running_loop().time
        coalescer = Coalescer(settings.buffer_size, settings.chunk_timeout_ms / 1000, clock)
    try:
        await exchange.start(200, [*SSE_HEADERS, *_observed(record, exchange, provider, stats)])
        if coalescer is None:
            await exchange.write(first)
            async for piece in chunks:
                await exchange.write(piece)
        else:
            await _relay_buffered(exchange, chunks, first, coalescer)
    except ClientDisconnected:
        raise
    except ModelMuxError as exc:
        log.warning("stream from %s failed after the first byte: %s", provider.name, exc.message)
        await exchange.write(_pending(coalescer) + error_event(exc))
    except Exception:
        log.exception("stream from %s failed after the first byte", provider.name)
        failure = InternalError("internal error while streaming")
        await exchange.write(_pending(coalescer) + error_event(failure))
    finally:
        await chunks.aclose()
    await exchange.end()


def _observed(record: RequestRecord, exchange: Exchange, provider: Provider,
              stats: CallStats) -> Headers:
    """The response head's headers: overhead (time since the request arrived, less the time
    waiting on the upstream), provider and attempts; the overhead is kept on ``record``."""
    overhead = max(time.perf_counter_ns() - exchange.received_ns - stats.wait_ns, 0)
    record.overhead_ns = overhead
    return [(OVERHEAD_HEADER, b"%.3f" % (overhead / 1e6)), *_upstream_headers(provider, stats)]


def _upstream_headers(provider: Provider, stats: CallStats) -> Headers:
    return [(PROVIDER_HEADER, _header_text(provider.name)),
            (ATTEMPTS_HEADER, b"%d" % stats.attempts)]


@functools.lru_cache(maxsize=64)
def _header_text(text: str) -> bytes:
    return _UNSENDABLE.sub("?", text).strip().encode("ascii") or b"-"


def _pending(coalescer: Coalescer | None) -> bytes:
    return coalescer.flush() if coalescer is not None else b""


async def _relay_buffered(
    exchange: Exchange, chunks: AsyncGenerator[bytes, None], first: bytes, coalescer: Coalescer
) -> None:
    """Write ``chunks`` through ``coalescer``, flushing at its deadline while the provider is quiet.

    One ``anext`` step is kept across timeouts, so a timer flush never drops a chunk; a step
    still running when this returns or raises is cancelled and awaited before the caller closes
    the generator.
    """
    loop = asyncio.get_running_loop()
    await exchange.write(coalescer.feed(first))
    step: asyncio.Future[bytes] | None = None
    try:
        while True:  # read on past [DONE] so the provider can finish (and pool its connection)
            if step is None:
                step = asyncio.ensure_future(anext(chunks))
            deadline = coalescer.deadline
            wait = None if deadline is None else max(deadline - loop.time(), 0.0)
            await asyncio.wait((step,), timeout=wait)
            if not step.done():
                await exchange.write(coalescer.tick())
                continue
            done, step = step, None
            try:
                piece = done.result()
            except StopAsyncIteration:
                break
            await exchange.write(coalescer.feed(piece))
        await exchange.write(coalescer.close())
    finally:
        if step is not None:
            step.cancel()
            await asyncio.wait((step,))
            if not step.cancelled():
                step.exception()
