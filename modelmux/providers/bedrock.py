"""The ``bedrock`` provider: every Bedrock model family through the Converse API.

Reference: Amazon Bedrock API Reference, "Converse" (``POST {base}/model/{modelId}/converse``)
and "ConverseStream" (``.../converse-stream``, answered in ``application/vnd.amazon.eventstream``),
the model id percent-encoded as one path segment. Requests are SigV4-signed (service
``bedrock``) with credentials from config or the AWS chain (``auth.aws``). Translation is
``translate.chat_to_converse``, ``converse_to_chat`` and ``ConverseStreamTranslator``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import msgspec

from modelmux.auth.aws import AwsCredentialSource
from modelmux.auth.sigv4 import AwsCredentials, SigV4Signer
from modelmux.codec.eventstream import EventStreamDecoder
from modelmux.codec.sse import encode_data
from modelmux.config.load import ConfigError
from modelmux.config.providers import BedrockConfig
from modelmux.errors import Headers, InvalidRequest, ModelMuxError
from modelmux.providers import bedrock_claude
from modelmux.providers.base import ChatCall, EmbedCall, Provider, RetryPolicy
from modelmux.providers.bedrock_claude import InvokeStreamRelay, invoke_body, is_claude
from modelmux.providers.claude_native import MessagesCall
from modelmux.providers.env import expand_env
from modelmux.providers.errors import error_from_response
from modelmux.providers.event_relay import SSERelay, chat_answer
from modelmux.providers.headers import check_base_url, extra_headers, json_headers, merge_headers
from modelmux.providers.relay import Relay
from modelmux.providers.transport import ProviderClient, StaticAuth, UpstreamStream
from modelmux.translate import bedrock_embed as embeds
from modelmux.translate.chat_to_converse import JSON_TOOL, chat_to_converse, json_mode
from modelmux.translate.converse_stream import ConverseStreamTranslator
from modelmux.translate.converse_to_chat import converse_error, converse_to_chat, error_name
from modelmux.translate.embeddings import embed_options, openai_embeddings, slices
from modelmux.upstream import ConnectionPool, UpstreamClosed

_encode = msgspec.json.Encoder().encode
EVENTSTREAM = b"application/vnd.amazon.eventstream"
TITAN_CONCURRENCY = 8
"""Titan embeds one text a request: at most this many of a call's requests are in flight."""
_STALE = frozenset({"ExpiredTokenException", "UnrecognizedClientException",
                    "InvalidSignatureException"})
"""Errors after which held temporary credentials are dropped and fetched again."""


class ConverseRelay(SSERelay[ConverseStreamTranslator]):
    """Event stream bytes in, framed OpenAI chunks out (``[DONE]`` once the translator is done)."""

    def __init__(self, translator: ConverseStreamTranslator,
                 frames: EventStreamDecoder | None = None) -> None:
        """``frames`` is the event stream decoder (tests pass a chosen twin)."""
        super().__init__(translator)
        self._frames = EventStreamDecoder() if frames is None else frames

    def feed(self, data: bytes) -> list[bytes]:
        """Framed chunks completed by ``data``.

        Raises:
            EventStreamError: the upstream event stream is malformed (a CRC, a length).
        """
        out: list[bytes] = []
        if self.finished:
            return out
        translator = self._translator
        for message in self._frames.feed(data):
            payloads = translator.feed(message)
            if (self._started and len(payloads) == 1 and not translator.done
                    and translator.error is None):  # a delta mid-stream: what _emit would do
                out.append(encode_data(payloads[0]))
                continue
            self._emit(payloads, out)
            if self.finished:
                break
        return out

    def close(self) -> list[bytes]:
        """Raises: EventStreamError: the body ended inside a message."""
        if not self.finished:
            self._frames.close()
        return super().close()

    def _early(self, payloads: list[bytes]) -> ModelMuxError | None:
        return self._translator.error


def bedrock_error(provider: str, status: int, headers: Headers, body: bytes) -> ModelMuxError:
    """A non-2xx Bedrock answer: the error name from ``x-amzn-ErrorType`` (or the body's
    ``__type``), the message from the body; without a name, the shared status table."""
    name = next((v.decode("latin-1") for n, v in headers if n.lower() == b"x-amzn-errortype"),
                "")
    try:
        doc: Any = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        doc = None
    if not name and isinstance(doc, dict) and isinstance(doc.get("__type"), str):
        name = doc["__type"]
    if not name:
        return error_from_response(provider, status, headers, body)
    message = ""
    if isinstance(doc, dict):
        found = doc.get("message", doc.get("Message"))
        message = found if isinstance(found, str) else ""
    error = converse_error(name, message, status)
    if not isinstance(error, InvalidRequest):
        error.message = f"provider {provider!r}: {error.message}"
    error.headers = [(n, v) for n, v in headers if n.lower() == b"retry-after"]
    return error


class BedrockProvider(Provider):
    """Bedrock models (Claude, Llama, Mistral, Nova, Titan, ...) through Converse."""

    type = "bedrock"

    def __init__(self, config: BedrockConfig, pool: ConnectionPool, *,
                 retry: RetryPolicy | None = None, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """Raises: ConfigError: an unset ``${ENV}``, half a key pair, a bad URL or header."""
        super().__init__(config.name, list(config.models))
        where = f"provider {config.name!r}"
        region = expand_env(config.region, where=f"{where}: region")
        if not region:
            raise ConfigError(f"{where}: region is empty")
        base = config.base_url or f"https://bedrock-runtime.{region}.amazonaws.com"
        self.base = check_base_url(expand_env(base, where=f"{where}: base_url"), where)
        self.clock = clock
        self._held: AwsCredentials | None = None  # what the last request was signed with
        self.signer = SigV4Signer(region, "bedrock")
        self.credentials = AwsCredentialSource(pool, label=where, static=_static(config, where),
                                               env=env, region=region, clock=clock)
        self.headers = merge_headers(json_headers(), extra_headers(config.headers, where))
        self.embed_input_type = config.embed_input_type
        unknown = [m for m in config.claude_models if m not in config.models]
        if unknown:
            raise ConfigError(f"{where}: claude_models {unknown!r} are not in its models")
        self.claude_models = frozenset(config.claude_models)
        self.retry = retry or RetryPolicy(max_retries=config.max_retries)
        self.upstream = ProviderClient(config.name, pool, StaticAuth([]),
                                       config.timeouts.timeouts(), self.retry,
                                       http2=config.http2, errors=self._error)

    def speaks_messages(self, model: str) -> bool:
        """Claude models take the Messages door's body through InvokeModel (``bedrock_claude``):
        those whose id or ARN says so, and those listed in ``claude_models``."""
        return model in self.claude_models or is_claude(model)

    def url(self, model: str, operation: str) -> str:
        return f"{self.base}/model/{quote(model, safe='')}/{operation}"

    def body(self, call: ChatCall) -> bytes:
        """Raises: InvalidRequest: what Converse cannot do, naming this provider."""
        try:
            return _encode(chat_to_converse(call.request, provider=self.name))
        except InvalidRequest as exc:
            raise InvalidRequest(f"provider {self.name!r} ({self.type}): {exc.message}",
                                 param=exc.param, code=exc.code) from None

    async def signed(self, url: str, headers: Headers, body: bytes) -> Headers:
        """``headers`` with the SigV4 headers for POSTing ``body`` to ``url`` now."""
        held = await self.credentials.credentials()
        self._held = held
        return self.signer.sign("POST", url, headers, body, held, self.clock())

    async def complete(self, call: ChatCall) -> bytes:
        if isinstance(call, MessagesCall):  # the Messages door to Claude: no translation
            return await bedrock_claude.complete(self, call)
        body = self.body(call)
        url = self.url(call.model, "converse")
        answer = await self.upstream.fetch(url, await self.signed(url, self.headers, body), body,
                                           call.stats)
        completion = converse_to_chat(answer, model=call.public_model,
                                      completion_id=call.completion_id, created=call.created,
                                      json_tool=JSON_TOOL if json_mode(call.request) else None)
        return chat_answer(completion, call.stats)

    def stream(self, call: ChatCall) -> UpstreamStream:
        if isinstance(call, MessagesCall):
            public = call.public_model
            return self._stream(call, self.url(call.model, "invoke-with-response-stream"),
                                invoke_body(call.messages_body, call.forward),
                                lambda: InvokeStreamRelay(self.name, public))

        def relay() -> ConverseRelay:
            return ConverseRelay(ConverseStreamTranslator(
                model=call.public_model, completion_id=call.completion_id, created=call.created,
                include_usage=call.include_usage,
                json_tool=JSON_TOOL if json_mode(call.request) else None))

        return self._stream(call, self.url(call.model, "converse-stream"), self.body(call), relay)

    def _stream(self, call: ChatCall, url: str, body: bytes,
                relay: Callable[[], Relay]) -> UpstreamStream:
        """The event stream of ``body`` POSTed to ``url``, signed when it is sent."""
        return self.upstream.stream(url, [*self.headers, (b"accept", EVENTSTREAM)], body, relay,
                                    call.stats, sign=self.signed)

    async def embed(self, call: EmbedCall) -> bytes:
        """InvokeModel on a Titan (one text a request, up to ``TITAN_CONCURRENCY`` at once) or
        Cohere (96 texts a request; ``input_type`` in the client's body, else the provider's
        ``embed_input_type``) embed model; the vectors joined in input order.

        Raises:
            InvalidRequest: no embed model, token-array input, or a non-string ``input_type``.
        """
        family, texts = embeds.texts_of(call.request, call.model, self.name)
        url = self.url(call.model, "invoke")
        vectors: list[list[float]] = []
        tokens = 0
        if family == "titan":
            gate = asyncio.Semaphore(TITAN_CONCURRENCY)

            async def one(text: str) -> tuple[list[float], int]:
                async with gate:
                    answer, _ = await self.invoke(url, embeds.titan_body(
                        text, call.request.dimensions), call)
                return embeds.titan_answer(answer, self.name)

            tasks = [asyncio.ensure_future(one(text)) for text in texts]
            try:
                done = await asyncio.gather(*tasks)
            finally:
                for task in tasks:  # one failed: the rest would be wasted
                    task.cancel()
            for vector, count in done:
                vectors.append(vector)
                tokens += count
        else:
            input_type = embed_options(call.raw).input_type or self.embed_input_type
            for start, end in slices(len(texts), embeds.COHERE_BATCH):
                answer, count = await self.invoke(
                    url, embeds.cohere_body(texts[start:end], input_type), call)
                vectors += embeds.cohere_answer(answer, self.name, end - start)
                tokens += count
        call.stats.tokens = (tokens, 0)
        return openai_embeddings(vectors, model=call.public_model,
                                 encoding_format=call.request.encoding_format,
                                 prompt_tokens=tokens)

    async def invoke(self, url: str, body: bytes, call: EmbedCall) -> tuple[bytes, int]:
        """One signed InvokeModel: the answer body and the input tokens Bedrock's
        ``x-amzn-bedrock-input-token-count`` header reports (0 without it).

        Raises:
            ModelMuxError: as ``ProviderClient.post``; a reset while reading is retryable.
        """
        headers = await self.signed(url, [*self.headers, (b"accept", b"application/json")],
                                    body)
        response = await self.upstream.post(url, headers, body, call.stats)
        try:
            async with response:
                answer = await response.read()
        except UpstreamClosed as exc:
            exc.retryable = True
            raise
        count = response.get_header(b"x-amzn-bedrock-input-token-count") or b"0"
        return answer, int(count) if count.isdigit() else 0

    def _error(self, provider: str, status: int, headers: Headers, body: bytes) -> ModelMuxError:
        error = bedrock_error(provider, status, headers, body)
        name = next((v for n, v in headers if n.lower() == b"x-amzn-errortype"), b"")
        held = self._held
        if held is not None and error_name(name.decode("latin-1")) in _STALE:
            self.credentials.invalidate(held)
        return error

    async def aclose(self) -> None:
        await self.credentials.aclose()


def _static(config: BedrockConfig, where: str) -> AwsCredentials | None:
    """The configured keys, or None for the chain.

    Raises:
        ConfigError: only one of access_key_id and secret_access_key is set, or one is empty.
    """
    key, secret = config.access_key_id, config.secret_access_key
    if key is None and secret is None:
        if config.session_token is not None:
            raise ConfigError(f"{where}: session_token needs access_key_id and "
                              "secret_access_key")
        return None
    if key is None or secret is None:
        raise ConfigError(f"{where}: set both access_key_id and secret_access_key, or neither "
                          "(then the AWS credential chain is used)")
    key = expand_env(key, where=f"{where}: access_key_id")
    secret = expand_env(secret, where=f"{where}: secret_access_key")
    token = (expand_env(config.session_token, where=f"{where}: session_token")
             if config.session_token is not None else None)
    if not key or not secret:
        raise ConfigError(f"{where}: access_key_id and secret_access_key must not be empty")
    return AwsCredentials(key, secret, token or None)

