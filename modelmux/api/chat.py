"""``POST /v1/chat/completions``: validate, pick the provider, answer or stream.

The model resolves to a group of deployments; the router plans the order (rules, strategy,
fallback groups) and ``pipeline.call`` tries them until one produces its first byte.

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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import msgspec

from modelmux.api.cached import begin, replay
from modelmux.api.ids import new_hex_id
from modelmux.api.responses import JSON_HEADERS, SSE_HEADERS, error_event
from modelmux.api.streaming import MODE_HEADER, Coalescer, choose_mode
from modelmux.errors import Headers, InternalError, InvalidRequest, ModelMuxError
from modelmux.observability.record import RequestRecord
from modelmux.pipeline.cache import CacheHit
from modelmux.pipeline.call import Failed, NewCall, Served
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Pipeline
from modelmux.pipeline.stream import Pieces, RelayedStream, broke
from modelmux.providers.base import CallStats, ChatCall, Provider, note_answer_usage
from modelmux.routing.models import DeploymentSpec
from modelmux.schemas.openai_chat import ChatCompletionRequest, request_decoder
from modelmux.server.exchange import ClientDisconnected

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange
    from modelmux.spend.service import Spend

log = logging.getLogger("modelmux.api")
T = TypeVar("T")

_AT = re.compile(r" - at `\$\.?(.*)`$")
_MISSING = re.compile(r"missing required field `([^`]*)`")
_UNSENDABLE = re.compile(r"[^\x20-\x7e]")

OVERHEAD_HEADER = b"x-modelmux-overhead-ms"
PROVIDER_HEADER = b"x-modelmux-provider"
ATTEMPTS_HEADER = b"x-modelmux-attempts"
RATELIMIT = b"x-ratelimit-"
DOOR = "openai.chat"


def field_param(message: str) -> str | None:
    """The field path named by a msgspec validation message, OpenAI style (``messages[0].role``)."""
    at = _AT.search(message)
    path = at.group(1) if at else ""
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None


def decode_body(body: bytes, decoder: msgspec.json.Decoder[T], what: str) -> T:
    """``body`` decoded and validated by ``decoder`` (``what`` names the request kind).

    Raises:
        InvalidRequest: empty, not JSON, or a wrong or missing field (named in ``param``).
    """
    if not body:
        raise InvalidRequest(f"The request body is empty; expected a JSON {what}.",
                             code="invalid_json")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise InvalidRequest(f"Invalid request: {message}", param=field_param(message),
                             code="invalid_value") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None


def decode_request(body: bytes) -> ChatCompletionRequest:
    """Decode and validate a chat completion request body.

    Raises:
        InvalidRequest: not JSON, a wrong or missing field (named in ``param``), or no messages.
    """
    request = decode_body(body, request_decoder, "chat completion request")
    if not request.messages:
        raise InvalidRequest("`messages` must contain at least one message.", param="messages",
                             code="invalid_value")
    return request


async def create_chat_completion(app: Services, exchange: Exchange) -> None:
    """Answer one chat request as JSON or SSE, as ``choose_mode`` decides, through the
    pipeline: its stages before the call (middleware, route), the call (every attempt) and
    the delivery, then the stages that observe answers (only when one does).

    What ``run_observed`` and ``serve_call`` do for the other doors is written out here: this
    door is the hot path, and each coroutine it awaits through costs on every resume.
    """
    body = exchange.body  # in already (always, for a request the lane declined)
    if body is None:
        body = await exchange.read_body()
    record = app.record(exchange)
    watcher = app.watcher  # tracing or debug_bodies; None when both are off
    if watcher is not None:
        watcher.request_body(record.request_id, body)
    request = decode_request(body)
    record.model = request.model
    ctx = RequestContext(DOOR, request, body, exchange.headers, record.request_id, record,
                         response_headers=exchange.extra_headers)
    ctx.client = exchange.client
    pipeline = app.pipeline
    try:
        asked = bool(request.stream)
        delivery, reason = choose_mode(
            app.config.streaming, asked_stream=asked,
            user_agent=exchange.header(b"user-agent") if asked else None,  # read only for streams
            headers=exchange.headers, override=exchange.header(MODE_HEADER),
        )
        if log.isEnabledFor(logging.DEBUG):  # one call, not two, when debug is off
            log.debug("stream mode %s for a stream=%s request (%s)", delivery, asked, reason)
        streamed = ctx.streamed = delivery != "never"
        try:
            await pipeline.before_call(ctx)
        except CacheHit as hit:
            record.model, record.mode = ctx.model, delivery
            await replay(exchange, ctx, hit.entry)
        else:
            out = exchange  # what the answer goes through: a Tee when the cache stores it
            if app.cache is not None:
                out = begin(exchange, ctx, app.cache.config.max_entry_bytes)
            request, body = ctx.request, ctx.body
            record.model, record.mode = request.model, delivery
            if asked and not streamed:  # the provider is asked for, and the client gets, one JSON body
                request = msgspec.structs.replace(request, stream=False, stream_options=None)
            elif streamed and not asked:
                request = msgspec.structs.replace(request, stream=True)
            completion_id, created = "chatcmpl-" + new_hex_id(), int(time.time())
            request_id, public_model = ctx.request_id, record.model
            spend = app.spend
            options = request.stream_options
            costed = spend is not None and streamed and not (options and options.include_usage)

            new_call = functools.partial(  # a partial, not a closure: no cell per variable
                _chat_call, request, body, public_model, completion_id, created, request_id,
                asked, spend if costed else None)
            estimate = ctx.estimate
            assert estimate is not None  # the route stage always runs
            try:
                served = await app.dispatcher.serve(
                    ctx.plan, estimate.prompt_tokens + estimate.output_tokens, new_call, streamed,
                    record)
            except Failed as failed:
                raise failed_error(out, failed) from None
            if not streamed:
                ctx.answer = served.answer
                if pipeline.heads:
                    exchange.extra_headers += pipeline.answer_headers(ctx)
            try:
                await deliver(app, out, record, served, delivery)
            finally:
                app.dispatcher.finish(served)
    except BaseException as exc:  # the client left (499), or the error the server answers
        if pipeline.observes:
            answered(pipeline, ctx, exchange, exc)
        raise
    if pipeline.observes:
        answered(pipeline, ctx, exchange, None)


def _chat_call(request: ChatCompletionRequest, body: bytes, public_model: str,
               completion_id: str, created: int, request_id: str, asked: bool,
               costed: Spend | None, spec: DeploymentSpec) -> ChatCall:
    """The call one deployment of a chat request gets; with ``costed``, the upstream is asked
    for usage the client does not see when the deployment's model is priced."""
    call = ChatCall(request, body, model=spec.model, public_model=public_model,
                    completion_id=completion_id, created=created, request_id=request_id,
                    sent_stream=asked)
    if costed is not None:
        call.hide_usage = costed.priced(spec.model)
    return call


def answered(pipeline: Pipeline, ctx: RequestContext, exchange: Exchange,
             exc: BaseException | None) -> None:
    """Record the outcome on ``ctx`` (``exc``: the call raised it) and run the stages'
    ``on_answer`` hooks."""
    if exc is None:
        ctx.status = exchange.status
    else:
        ctx.status = exc.status if isinstance(exc, ModelMuxError) else 500
        ctx.error = exc
    pipeline.after_answer(ctx)


async def run_observed(app: Services, exchange: Exchange, ctx: RequestContext,
                       call: Callable[[Services, Exchange, RequestContext], Awaitable[None]]
                       ) -> None:
    """Run a door's ``call`` for ``ctx``; then, when some stage observes answers, record the
    outcome on ``ctx`` and run the stages' ``on_answer`` hooks."""
    pipeline = app.pipeline
    if not pipeline.observes:
        await call(app, exchange, ctx)
        return
    try:
        await call(app, exchange, ctx)
    except BaseException as exc:  # the client left (499), or the error the server answers
        answered(pipeline, ctx, exchange, exc)
        raise
    answered(pipeline, ctx, exchange, None)


def failed_error(exchange: Exchange, failed: Failed) -> ModelMuxError:
    """The client's error when every attempt failed, the upstream headers (provider,
    attempts) added to the answer."""
    if failed.provider is not None:
        exchange.extra_headers += upstream_headers(failed.provider, failed.stats)
    return failed.error


async def serve_call(app: Services, exchange: Exchange, ctx: RequestContext,
                     new_call: NewCall, streamed: bool, *,
                     with_output: bool = True) -> Served:
    """Serve ``ctx`` through the call stage (``new_call`` builds each attempt's call), which
    notes the deployment tried and the served call's stats on ``ctx.record``.

    The estimate counts the expected output tokens too, unless ``with_output`` is False.

    Raises:
        ModelMuxError: the failure's error, once the failed attempts' stats are recorded and
            the upstream headers (provider, attempts) added to the answer.
    """
    estimate = ctx.estimate
    assert estimate is not None  # the route stage always runs
    tokens = estimate.prompt_tokens + (estimate.output_tokens if with_output else 0)
    try:
        return await app.dispatcher.serve(ctx.plan, tokens, new_call, streamed, ctx.record)
    except Failed as failed:
        raise failed_error(exchange, failed) from None


async def relay_as_is(exchange: Exchange, chunks: Pieces, first: bytes) -> None:
    """Write ``first`` and the rest of ``chunks`` unchanged: a relayed upstream stream splices
    to the client's sink, and only what it still reads as pieces goes through here."""
    await exchange.write(first)
    if type(chunks) is RelayedStream:
        sink = exchange.sink()
        if sink is not None:  # not for HEAD
            await chunks.splice(sink)
    async for piece in chunks:
        await exchange.write(piece)


async def deliver(app: Services, exchange: Exchange, record: RequestRecord, served: Served,
                   delivery: str) -> None:
    """Send the served answer, or relay the served stream from its first chunk on."""
    provider, stats = served.provider, served.call.stats
    answer, chunks, first = served.answer, served.chunks, served.first
    settings = app.config.streaming
    streamed = delivery != "never"
    if not streamed:
        if stats.tokens is None:  # a traced answer was read already
            note_answer_usage(stats, answer)
        head = [*JSON_HEADERS, *observed_headers(record, exchange, provider, stats)]
        await exchange.respond(200, head, answer)
        return
    assert chunks is not None
    coalescer = None
    if delivery == "buffered":
        clock = asyncio.get_running_loop().time
        coalescer = Coalescer(settings.buffer_size, settings.chunk_timeout_ms / 1000, clock)
    try:
        await exchange.start(200, [*SSE_HEADERS,
                                   *observed_headers(record, exchange, provider, stats)])
        if coalescer is None:  # relay_as_is, written out: one coroutine less a stream
            await exchange.write(first)
            if type(chunks) is RelayedStream:
                sink = exchange.sink()
                if sink is not None:  # not for HEAD
                    await chunks.splice(sink)
            async for piece in chunks:
                await exchange.write(piece)
        else:
            await _relay_buffered(exchange, chunks, first, coalescer)
    except ClientDisconnected:
        raise
    except ModelMuxError as exc:
        log.warning("stream from %s failed after the first byte: %s", provider.name, exc.message)
        broke(stats, exc.code)  # counts against the deployment's breaker at the end
        await exchange.write(_pending(coalescer) + error_event(exc))
    except Exception:
        log.exception("stream from %s failed after the first byte", provider.name)
        failure = InternalError("internal error while streaming")
        broke(stats, failure.code)  # a failure of the deployment too, not a success
        await exchange.write(_pending(coalescer) + error_event(failure))
    finally:
        await chunks.aclose()
    await exchange.end()


def observed_headers(record: RequestRecord, exchange: Exchange, provider: Provider,
              stats: CallStats) -> Headers:
    """The response head's headers: overhead (time since the request arrived, less the time
    waiting on the upstream), provider, attempts and the upstream headers the provider passes
    on, less its ``x-ratelimit-*`` when the admit stage sent the caller's own; the overhead is
    kept on ``record``."""
    overhead = max(time.perf_counter_ns() - exchange.received_ns - stats.wait_ns, 0)
    record.overhead_ns = overhead
    passed = stats.headers
    if passed and any(name.startswith(RATELIMIT) for name, _ in exchange.extra_headers):
        passed = [(name, value) for name, value in passed if not name.startswith(RATELIMIT)]
    return [(OVERHEAD_HEADER, b"%.3f" % (overhead / 1e6)),
            (PROVIDER_HEADER, _header_text(provider.name)),  # upstream_headers, inlined
            (ATTEMPTS_HEADER, b"%d" % stats.attempts), *passed]


def upstream_headers(provider: Provider, stats: CallStats) -> Headers:
    return [(PROVIDER_HEADER, _header_text(provider.name)),
            (ATTEMPTS_HEADER, b"%d" % stats.attempts)]


@functools.lru_cache(maxsize=64)
def _header_text(text: str) -> bytes:
    return _UNSENDABLE.sub("?", text).strip().encode("ascii") or b"-"


def _pending(coalescer: Coalescer | None) -> bytes:
    return coalescer.flush() if coalescer is not None else b""


async def _relay_buffered(exchange: Exchange, chunks: Pieces, first: bytes,
                          coalescer: Coalescer) -> None:
    """Write ``chunks`` through ``coalescer``, flushing at its deadline while the provider is quiet.

    One ``anext`` step is kept across timeouts, so a timer flush never drops a chunk; a step
    still running when this returns or raises is cancelled and awaited before the caller closes
    the generator.
    """
    loop = asyncio.get_running_loop()
    await exchange.write(coalescer.feed(first))
    pieces = aiter(chunks)
    step: asyncio.Future[bytes] | None = None
    try:
        while True:  # read on past [DONE] so the provider can finish (and pool its connection)
            if step is None:
                step = asyncio.ensure_future(anext(pieces))
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
