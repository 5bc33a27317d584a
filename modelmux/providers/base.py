"""The interface every provider implements, and the per-request call object it receives.

A provider turns one OpenAI chat request into an OpenAI response body (``complete``) or into
SSE-framed OpenAI chunks (``stream``), and one embeddings request into its answer (``embed``). Errors before the first streamed byte are raised as
``ModelMuxError``; after it, a stream ends with an error event instead of ``[DONE]``.
"""

from __future__ import annotations

import abc
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import msgspec

from modelmux.errors import Headers, InvalidRequest
from modelmux.providers.relay import Spliceable
from modelmux.providers.token_count import CountInput, Counted, CountUnavailable
from modelmux.schemas.openai_chat import ChatCompletionRequest
from modelmux.schemas.openai_completions import CompletionRequest
from modelmux.schemas.openai_embeddings import EmbeddingRequest
from modelmux.upstream.retry import Backoff

Tokens = tuple[int, int]
"""(input, output) tokens as the upstream reported them."""

Cache = tuple[int, int]
"""(cache read, cache write) tokens: the part of the input tokens served from, or written to,
the provider's prompt cache (priced apart by ``spend``)."""


class _Details(msgspec.Struct):
    cached_tokens: int | None = None
    cache_creation_tokens: int | None = None  # ModelMux's name for Anthropic's cache writes


class Usage(msgspec.Struct):
    """An OpenAI ``usage`` object, the part of it that is counted."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _Details | None = None

    @property
    def tokens(self) -> Tokens:
        return (self.prompt_tokens, self.completion_tokens)

    @property
    def cache(self) -> Cache | None:
        return cache_of(self.prompt_tokens_details)


def cache_of(details: object) -> Cache | None:
    """(cache read, cache write) from OpenAI's ``prompt_tokens_details`` (a Struct or a dict);
    None when neither is there."""
    if details is None:
        return None
    get = details.get if isinstance(details, dict) else lambda name: getattr(details, name, None)
    read, write = get("cached_tokens"), get("cache_creation_tokens")
    if not read and not write:
        return None
    return (read or 0, write or 0)


class UsageOnly(msgspec.Struct):
    """An OpenAI answer or chunk with only its ``usage`` decoded."""

    usage: Usage | None = None


usage_only = msgspec.json.Decoder(UsageOnly)
"""Decodes an OpenAI answer's or chunk's ``usage`` and nothing else (shared by the relays)."""


def usage_of(body: bytes) -> Tokens | None:
    """The ``usage`` of an OpenAI completion or chunk, decoding nothing else; None if absent."""
    try:
        usage = usage_only.decode(body).usage
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return None if usage is None else usage.tokens


def note_answer_usage(stats: CallStats, body: bytes) -> None:
    """Put the ``usage`` of an OpenAI completion on ``stats`` (tokens and cache), decoding
    nothing else; leaves ``stats`` alone when there is none."""
    try:
        usage = usage_only.decode(body).usage
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if usage is not None:
        stats.tokens, stats.cache = usage.tokens, usage.cache


_usage = msgspec.json.Decoder(Usage | None)


def usage_from(usage: bytes) -> Tokens | None:
    """The token counts of a ``usage`` value given as its own JSON; None if null or not one."""
    found = _usage_value(usage)
    return None if found is None else found.tokens


def note_usage(stats: CallStats, usage: bytes) -> None:
    """Put a ``usage`` value given as its own JSON on ``stats`` (tokens and cache)."""
    try:  # _usage_value and the properties, written out: three calls less a whole answer
        found = _usage.decode(usage)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if found is not None:
        stats.tokens = (found.prompt_tokens, found.completion_tokens)
        details = found.prompt_tokens_details
        stats.cache = None if details is None else cache_of(details)


def _usage_value(usage: bytes) -> Usage | None:
    try:
        return _usage.decode(usage)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def carries_usage(payload: bytes) -> bool:
    """True when an OpenAI chunk has a ``"usage": {...}`` object (not ``null``): one scan, no JSON."""
    at = payload.rfind(b'"usage":')
    return at >= 0 and payload[at + 8:at + 24].lstrip()[:1] == b"{"


class AttemptWatch(Protocol):
    """What the transport reports of the try the call stage opened to whoever watches the call
    (tracing, ``debug_bodies``: ``observability.calls.CallWatch``); providers know no more of
    it. The call stage starts each try and records its outcome; the transport only says what
    it sends."""

    def attempt(self, resend: int) -> None:
        """The call stage starts a try (``resend`` tries came before it)."""
        ...

    def sending(self, url: str, headers: Headers, body: bytes) -> Headers:
        """The current try is about to be sent; returns the trace headers to add to it."""
        ...

    def attempt_done(self, status: int, error: str | None) -> None:
        """The call stage records the try's outcome (``status`` 0: no answer head)."""
        ...


class CallStats:
    """What one call cost upstream, for metrics and the access log.

    The transport reports what happened: ``sent``, the requests the current try put on the
    wire (a re-send after a 401 too), ``resent``, the codes of the answers it sent again
    after, and ``status``, the upstream status of the last answer head. The call stage counts
    each try from them (``attempts``) and records its outcome (``errors``: the code of every
    failed try, and of a stream that failed after its first byte).
    ``wait_ns`` is the time spent waiting on the upstream before the answer (a whole JSON
    answer, or a stream's first chunk) since ``started_ns``, retries and backoff included;
    ``total_ns`` runs to the end of the upstream body. ``watch``
    (``observability.calls.CallWatch``) is set only while tracing or ``debug_bodies`` is on.
    ``headers`` are the upstream answer headers a provider passes on to the client. ``cache``
    is the part of the input tokens read from or written to the provider's prompt cache.
    """

    __slots__ = ("attempts", "retries", "errors", "started_ns", "wait_ns", "total_ns", "tokens",
                 "cache", "watch", "headers", "status", "sent", "resent")

    def __init__(self) -> None:
        self.started_ns = 0  # perf_counter_ns of the first try, set by the call stage
        self.attempts = 0
        self.retries = 0
        self.errors: list[str] = []
        self.wait_ns = 0
        self.total_ns = 0
        self.tokens: Tokens | None = None
        self.cache: Cache | None = None
        self.watch: AttemptWatch | None = None
        self.headers: Headers = []  # upstream answer headers the client gets too (x-ratelimit-*)
        self.status = 0  # the last try's upstream status (0: no answer head)
        self.sent = 0  # requests of the current try, until the call stage counts them
        self.resent: list[str] | None = None  # codes of answers the current try sent again after


class ChatCall:
    """One chat completion request, as a provider sees it; ``stats`` is for it to fill in."""

    __slots__ = ("request", "raw", "model", "public_model", "completion_id", "created",
                 "request_id", "stats", "sent_stream", "hide_usage")

    def __init__(
        self,
        request: ChatCompletionRequest,
        raw: bytes,
        *,
        model: str,
        public_model: str,
        completion_id: str,
        created: int,
        request_id: str,
        sent_stream: bool | None = None,
    ) -> None:
        """``sent_stream`` is the client's own ``stream`` in ``raw`` when the front door has
        changed ``request.stream`` (streaming modes); ``public_model`` is the ``model`` in ``raw``."""
        self.request = request
        self.raw = raw
        self.model = model
        self.public_model = public_model
        self.completion_id = completion_id
        self.created = created
        self.request_id = request_id
        self.stats = CallStats()
        self.sent_stream = bool(request.stream) if sent_stream is None else sent_stream
        self.hide_usage = False
        """Set by the door when a stream must be costed though its client did not ask for
        usage: an OpenAI-format upstream is asked for it, and the usage chunk kept back."""

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)

    @property
    def include_usage(self) -> bool:
        options = self.request.stream_options
        return bool(options is not None and options.include_usage)


class _RawCall:
    """A request passed through by its raw body: ``raw`` is the client's body (its ``model`` is
    ``public_model``); ``stats`` is for the provider to fill in."""

    __slots__ = ("request", "raw", "model", "public_model", "request_id", "stats")

    def __init__(self, request: EmbeddingRequest | CompletionRequest, raw: bytes, *, model: str,
                 public_model: str, request_id: str) -> None:
        self.request = request
        self.raw = raw
        self.model = model
        self.public_model = public_model
        self.request_id = request_id
        self.stats = CallStats()


class EmbedCall(_RawCall):
    """One embeddings request, as a provider sees it."""

    __slots__ = ()
    request: EmbeddingRequest


class TextCall(_RawCall):
    """One legacy text completion (``/v1/completions``), as a provider sees it: passed through,
    so only the client's ``raw`` body, the names and the stream flags matter."""

    __slots__ = ("sent_stream", "hide_usage")
    request: CompletionRequest

    def __init__(self, request: CompletionRequest, raw: bytes, *, model: str, public_model: str,
                 request_id: str) -> None:
        super().__init__(request, raw, model=model, public_model=public_model,
                         request_id=request_id)
        self.sent_stream = bool(request.stream)
        self.hide_usage = False  # as ``ChatCall.hide_usage``


Call = ChatCall | EmbedCall | TextCall
"""What the call stage runs against a provider."""

ProviderStream = AsyncGenerator[bytes, None] | Spliceable
"""What a provider's ``stream`` gives the call stage: its pieces, or a ``Spliceable``."""

TEXT_COMPLETION_TYPES = "openai, azure, openai_compatible, huggingface"
"""The provider types that serve ``/v1/completions``, for the error that names them."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often one deployment is tried again after a retryable failure, and how long the call
    stage waits between tries; ``rand`` and ``sleep`` are injectable for tests (no ``sleep``:
    the call stage's one sleep waits).

    A ``retry-after`` longer than ``cap`` is not waited for: the error goes on (to the next
    deployment, or to the client with that header) instead.
    """

    max_retries: int = 2
    base: float = 0.5
    cap: float = 30.0
    rand: Callable[[], float] = random.random
    sleep: Callable[[float], Awaitable[None]] | None = None

    @property
    def backoff(self) -> Backoff:
        """The call stage's one waiting rule, with this policy's numbers."""
        return Backoff(self.base, self.cap)


NO_RETRY = RetryPolicy(max_retries=0)


class Provider(abc.ABC):
    """An upstream that serves some models.

    ``complete`` and ``stream`` make one try (a provider may re-send once after its credentials
    refresh); the call stage decides every further attempt from ``retry`` and from the
    ``retryable`` flag of the errors they raise.
    """

    type: ClassVar[str]
    retry: RetryPolicy = NO_RETRY

    def __init__(self, name: str, models: list[str]) -> None:
        self.name = name
        self.models = models

    def speaks_messages(self, model: str) -> bool:
        """True when upstream ``model`` takes an Anthropic Messages body as it is (the Messages
        door then goes native, ``claude_native.MessagesCall``)."""
        return False

    def counts_tokens(self, model: str) -> bool:
        """True when upstream ``model`` has a counting endpoint ``count_tokens`` uses; the
        Anthropic door estimates for the others."""
        return False

    async def count_tokens(self, prompt: CountInput, model: str, stats: CallStats) -> Counted:
        """The upstream's own token count of ``prompt`` for ``model`` (when ``counts_tokens``).

        Raises:
            CountUnavailable: the upstream cannot count it (the door estimates instead).
            ModelMuxError: the upstream's error.
        """
        raise CountUnavailable(self.name, "unsupported")

    @abc.abstractmethod
    async def complete(self, call: ChatCall) -> bytes:
        """The OpenAI ``chat.completion`` JSON body for a non-streaming call."""

    @abc.abstractmethod
    def stream(self, call: ChatCall) -> ProviderStream:
        """SSE-framed OpenAI chunks, ending with ``data: [DONE]`` or an error event: a
        ``Spliceable`` the call stage relays (and may splice), or the pieces themselves."""

    async def embed(self, call: EmbedCall) -> bytes:
        """The OpenAI embeddings answer (``object: list``) for ``call``, every input in order.

        Raises:
            InvalidRequest: this provider type serves no embeddings (the default).
        """
        raise InvalidRequest(
            f"provider {self.name!r} (type {self.type}) does not serve embeddings; route the "
            "model to an openai, azure, openai_compatible, huggingface, gemini, vertex, cohere "
            "or mock provider.",
            param="model", code="embeddings_not_supported")

    async def complete_text(self, call: TextCall) -> bytes:
        """The legacy ``text_completion`` JSON body for ``call``.

        Raises:
            InvalidRequest: this provider type serves no legacy completions (the default).
        """
        raise self._no_text_completions()

    def stream_text(self, call: TextCall) -> ProviderStream:
        """SSE-framed legacy completion chunks, ending with ``data: [DONE]`` or an error event.

        Raises:
            InvalidRequest: (on the first ``anext``) this provider type serves none.
        """
        return self._refuse_text_stream()

    async def _refuse_text_stream(self) -> AsyncGenerator[bytes, None]:
        raise self._no_text_completions()
        yield b""  # pragma: no cover  # makes this a generator

    def _no_text_completions(self) -> InvalidRequest:
        return InvalidRequest(
            f"provider {self.name!r} (type {self.type}) does not serve /v1/completions; the "
            f"legacy completions door is served by provider types {TEXT_COMPLETION_TYPES}.",
            param="model", code="completions_not_supported")

    async def aclose(self) -> None:
        """Release upstream connections and credentials."""
