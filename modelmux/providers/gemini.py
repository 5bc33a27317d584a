"""The ``gemini`` provider: Gemini models through Google AI Studio.

Reference: Gemini API "Generating content": ``POST {base}/v1beta/models/{model}:generateContent``
and ``:streamGenerateContent?alt=sse``, the key in ``x-goog-api-key``. Translation is
``translate.chat_to_gemini``, ``gemini_to_chat`` and ``GeminiStreamTranslator``; embeddings go
to Gemini API "Embeddings" ``:batchEmbedContents`` through ``translate.embed_gemini``;
count_tokens to Gemini API "Counting tokens" ``:countTokens`` (``providers.token_count``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import msgspec

from modelmux.config.load import ConfigError
from modelmux.config.providers import GeminiConfig
from modelmux.errors import Headers, InvalidRequest
from modelmux.providers.base import CallStats, ChatCall, EmbedCall, Provider, RetryPolicy
from modelmux.providers.embed_batch import embed_batches
from modelmux.providers.env import expand_env
from modelmux.providers.event_relay import chat_answer, relay_events
from modelmux.providers.headers import check_base_url, extra_headers, json_headers, merge_headers
from modelmux.providers.token_count import (
    NATIVE,
    CountInput,
    Counted,
    gemini_count_body,
    total_tokens,
)
from modelmux.providers.transport import Auth, ProviderClient, StaticAuth, UpstreamStream
from modelmux.schemas.openai_chat import ChatCompletionRequest
from modelmux.translate.chat_to_gemini import chat_to_gemini
from modelmux.translate.embed_gemini import gemini_embed_body, gemini_vectors
from modelmux.translate.embeddings import embed_options, text_inputs
from modelmux.translate.gemini_stream import GeminiStreamTranslator
from modelmux.translate.gemini_to_chat import gemini_to_chat
from modelmux.upstream import ConnectionPool, Timeouts

_encode = msgspec.json.Encoder().encode


def studio_url(base: str, model: str, stream: bool) -> str:
    """The AI Studio URL for ``model``; the model name is one percent-encoded path segment."""
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{base}/v1beta/models/{quote(model, safe='')}:{method}"


def studio_count_url(base: str, model: str) -> str:
    """The AI Studio ``countTokens`` URL for ``model``."""
    return f"{base}/v1beta/models/{quote(model, safe='')}:countTokens"


def studio_embed_url(base: str, model: str) -> str:
    """The AI Studio ``batchEmbedContents`` URL for ``model``."""
    return f"{base}/v1beta/models/{quote(model, safe='')}:batchEmbedContents"


def api_key_auth(key: str, header: bytes, where: str, prefix: bytes = b"") -> StaticAuth:
    """A fixed key header, once the key is known to be usable on the wire.

    Raises:
        ConfigError: an empty key, or one that is not latin-1 text.
    """
    if not key:
        raise ConfigError(f"{where}: api_key is empty")
    try:
        return StaticAuth([(header, prefix + key.encode("latin-1"))])
    except UnicodeEncodeError:
        raise ConfigError(f"{where}: api_key is not latin-1 text") from None


class GeminiProvider(Provider):
    """Gemini through any endpoint that speaks ``generateContent`` (``url(model, stream)``);
    embeddings where ``embed_url(model)`` is given (AI Studio), else the base refusal;
    count_tokens where ``count_url(model)`` is given."""

    type = "gemini"

    def __init__(
        self,
        name: str,
        models: list[str],
        pool: ConnectionPool,
        *,
        url: Callable[[str, bool], str],
        headers: Headers,
        auth: Auth,
        timeouts: Timeouts,
        retry: RetryPolicy,
        http2: bool | None = None,
        embed_url: Callable[[str], str] | None = None,
        embed_batch_size: int = 100,
        embed_task_type: str | None = None,
        count_url: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(name, models)
        self.url = url
        self.count_url = count_url
        self.embed_url = embed_url
        self.embed_batch_size = embed_batch_size
        self.embed_task_type = embed_task_type
        self.headers = headers
        self.retry = retry
        self.upstream = ProviderClient(name, pool, auth, timeouts, retry, http2=http2)

    @classmethod
    def from_config(cls, config: GeminiConfig, pool: ConnectionPool,
                    retry: RetryPolicy | None = None) -> GeminiProvider:
        """Raises: ConfigError: an unset ``${ENV}``, an empty key, a bad URL or header."""
        where = f"provider {config.name!r}"
        base = check_base_url(expand_env(config.base_url, where=f"{where}: base_url"), where)
        base = base.removesuffix("/v1beta")
        key = expand_env(config.api_key, where=f"{where}: api_key")
        return cls(
            config.name, list(config.models), pool,
            url=lambda model, stream: studio_url(base, model, stream),
            headers=merge_headers(json_headers(), extra_headers(config.headers, where)),
            auth=api_key_auth(key, b"x-goog-api-key", where),
            timeouts=config.timeouts.timeouts(),
            retry=retry or RetryPolicy(max_retries=config.max_retries),
            http2=config.http2,
            embed_url=lambda model: studio_embed_url(base, model),
            embed_batch_size=config.embed_batch_size,
            embed_task_type=config.embed_task_type,
            count_url=lambda model: studio_count_url(base, model),
        )

    def body(self, call: ChatCall) -> bytes:
        """Raises: InvalidRequest: what Gemini cannot do, naming this provider."""
        return _encode(self.request_json(call.request))

    def request_json(self, request: ChatCompletionRequest) -> dict[str, Any]:
        """The Gemini request for ``request``, as JSON values.

        Raises:
            InvalidRequest: what Gemini cannot do, naming this provider.
        """
        try:
            return chat_to_gemini(request, provider=self.name)
        except InvalidRequest as exc:
            raise InvalidRequest(f"provider {self.name!r} ({self.type}): {exc.message}",
                                 param=exc.param, code=exc.code) from None

    def counts_tokens(self, model: str) -> bool:
        return self.count_url is not None

    def count_body(self, gemini: dict[str, Any], model: str) -> bytes:
        """The countTokens body for a Gemini request (AI Studio's form)."""
        return gemini_count_body(gemini, model)

    async def count_tokens(self, prompt: CountInput, model: str, stats: CallStats) -> Counted:
        """``:countTokens`` on the request as ``generateContent`` would get it."""
        if self.count_url is None:
            return await super().count_tokens(prompt, model, stats)
        body = self.count_body(self.request_json(prompt.chat), model)
        answer = await self.upstream.fetch(self.count_url(model), self.headers, body, stats)
        return Counted(total_tokens(answer, self.name), NATIVE)

    async def complete(self, call: ChatCall) -> bytes:
        body = self.body(call)
        answer = await self.upstream.fetch(self.url(call.model, False), self.headers, body,
                                           call.stats)
        completion = gemini_to_chat(answer, model=call.public_model,
                                    completion_id=call.completion_id, created=call.created)
        return chat_answer(completion, call.stats)

    def stream(self, call: ChatCall) -> UpstreamStream:
        body = self.body(call)
        return relay_events(self.upstream, self.url(call.model, True), self.headers, body, call,
                            GeminiStreamTranslator)

    async def embed(self, call: EmbedCall) -> bytes:
        """``batchEmbedContents`` in batches of ``embed_batch_size`` texts; ``task_type`` in
        the client's body, else the provider's ``embed_task_type``, becomes ``taskType``.

        Raises:
            InvalidRequest: token-array input, a bad ``task_type``, or no embeddings here.
        """
        if self.embed_url is None:
            return await super().embed(call)
        texts = text_inputs(call.request, self.name, self.type)
        task = embed_options(call.raw).task_type or self.embed_task_type
        dimensions = call.request.dimensions
        return await embed_batches(
            self.upstream, self.embed_url(call.model), self.headers, call, texts,
            self.embed_batch_size,
            lambda batch: gemini_embed_body(batch, model=call.model, dimensions=dimensions,
                                            task_type=task),
            lambda answer, want: gemini_vectors(answer, self.name, want))


def build_gemini(config: GeminiConfig, pool: ConnectionPool) -> GeminiProvider:
    return GeminiProvider.from_config(config, pool)
