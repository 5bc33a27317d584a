"""The ``openai_compatible`` provider: any ``POST {base_url}/chat/completions`` server.

Reference: OpenAI API "Chat > Create chat completion" and "The chat completion chunk object"
(vLLM, llama.cpp, LM Studio and OpenAI itself speak it). The client's body goes on with only
``model`` changed; stream payloads pass through as bytes, with the top-level ``model`` put back
to the name the client asked for. Events are decoded only to find ``[DONE]`` and errors.
"""

from __future__ import annotations

from typing import Any

import msgspec

from modelmux import _accel
from modelmux.config.providers import (
    AzureConfig,
    HuggingFaceConfig,
    OpenAICompatibleConfig,
    OpenAIConfig,
)
from modelmux.errors import Headers, ModelMuxError, UpstreamError
from modelmux.providers.base import (
    NO_RETRY,
    CallStats,
    ChatCall,
    EmbedCall,
    Provider,
    RetryPolicy,
    TextCall,
    note_usage,
)
from modelmux.providers.embed_batch import batch_bodies, join_answers
from modelmux.providers.env import expand_env
from modelmux.providers.errors import error_from_payload, error_from_response
from modelmux.providers.headers import (
    check_base_url,
    extra_headers,
    header_value,
    json_headers,
    merge_headers,
)
from modelmux.providers.chunk_relay import UsageHidden
from modelmux.providers.relay import Relay
from modelmux.providers.token_count import (
    NATIVE,
    UNAVAILABLE_STATUSES,
    CountInput,
    Counted,
    CountUnavailable,
    llamacpp_tokenize_body,
    template_body,
    template_prompt,
    token_list_length,
    vllm_body,
    vllm_count,
)
from modelmux.providers.transport import Auth, Direct, ProviderClient, StaticAuth, UpstreamStream
from modelmux.upstream import ConnectionPool

_encode = msgspec.json.Encoder().encode
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])


ChunkRelay = _accel.load("chunk_relay", "modelmux.providers.chunk_relay").ChunkRelay
"""The stream relay: the native twin (``_speedups/chunk_relay.pyx``) or the pure class."""
_NULL = msgspec.Raw(b"null")
_TRUE = msgspec.Raw(b"true")
_FALSE = msgspec.Raw(b"false")


def upstream_body(raw: bytes, *, sent_model: str, sent_stream: bool, model: str,
                  stream: bool, ask_usage: bool = False) -> bytes:
    """The client's body for the upstream: ``raw`` itself when ``model`` and ``stream`` match
    what the client sent (``sent_model``, ``sent_stream``: known from the front door's decode,
    so the common case parses nothing again) and no usage is to be asked for (``ask_usage``:
    ``stream_options.include_usage`` set for a stream the account stage must cost).

    Otherwise only those members change (the front door may turn a stream into one JSON
    answer or back; ``stream_options`` goes when streaming is turned off).

    Raises:
        msgspec.DecodeError / msgspec.ValidationError: ``raw`` is not a JSON object.
    """
    ask_usage = ask_usage and stream
    if sent_model == model and sent_stream == stream and not ask_usage:
        return raw
    fields = _fields.decode(raw)
    fields["model"] = msgspec.Raw(_encode(model))
    if sent_stream != stream:
        fields["stream"] = _TRUE if stream else _FALSE
        if not stream:
            fields.pop("stream_options", None)
    if ask_usage:
        options = _fields.decode(fields["stream_options"]) if fields.get(
            "stream_options", _NULL) != _NULL else {}
        options["include_usage"] = _TRUE
        fields["stream_options"] = msgspec.Raw(_encode(options))
    return _encode(fields)


class OpenAICompatibleProvider(Provider):
    """Relays chat completions and embeddings to an OpenAI-format server.

    Subclasses (``openai``, ``huggingface``, ``azure``) change only what differs: the URL of a
    model's endpoint (``url_for``), the auth headers (``auth_headers``), how error bodies read
    (``map_error``), where the credentials come from (``build_auth``) and which answer
    headers reach the client (``keep_prefix``).
    """

    type = "openai_compatible"
    keep_prefix: bytes | None = None

    def __init__(
        self,
        config: OpenAICompatibleConfig | OpenAIConfig | HuggingFaceConfig | AzureConfig,
        pool: ConnectionPool,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Raises: ConfigError: an unset ``${ENV}``, a bad ``base_url`` or header."""
        super().__init__(config.name, list(config.models))
        where = self.where = f"provider {config.name!r}"
        self.base = check_base_url(expand_env(config.base_url, where=f"{where}: base_url"), where)
        self.url = self.url_for("", "/chat/completions")
        self.embed_batch_size = config.embed_batch_size
        self.headers: Headers = merge_headers(
            json_headers(), self.own_headers(config), extra_headers(config.headers, where)
        )
        self.stream_headers: Headers = [*self.headers, (b"accept", b"text/event-stream")]
        policy = self.retry = retry or RetryPolicy(max_retries=config.max_retries)
        self.upstream = ProviderClient(config.name, pool, self.build_auth(config, pool),
                                       config.timeouts.timeouts(), policy, http2=config.http2,
                                       errors=self.map_error, keep_prefix=self.keep_prefix)
        self.tokenize = config.tokenize if isinstance(config, OpenAICompatibleConfig) else None
        self.root = self.base.removesuffix("/v1")
        self.count_upstream: ProviderClient | None = None
        if self.tokenize is not None:
            self.count_upstream = ProviderClient(config.name, pool, self.upstream.auth,
                                                 config.timeouts.timeouts(), NO_RETRY,
                                                 http2=config.http2, errors=self._count_error)

    def url_for(self, model: str, path: str) -> str:
        """The URL of ``path`` (``/chat/completions``, ``/embeddings``) for upstream ``model``."""
        return self.base + path

    def own_headers(self, config: Any) -> Headers:
        """Headers this provider type adds to every request (before the configured ones)."""
        return []

    def build_auth(self, config: Any, pool: ConnectionPool) -> Auth:
        """Where the credentials come from: fixed ``auth_headers`` unless a type has tokens."""
        return StaticAuth(self.auth_headers(config))

    def auth_headers(self, config: Any) -> Headers:
        """``Authorization: Bearer {api_key}``, or none without a key.

        Raises:
            ConfigError: an unset ``${ENV}`` or a key that is not latin-1 text.
        """
        if not config.api_key:
            return []
        key = expand_env(config.api_key, where=f"{self.where}: api_key")
        return [(b"authorization", b"Bearer " + header_value(key, f"{self.where}: api_key"))]

    def map_error(self, provider: str, status: int, headers: Headers, body: bytes) -> ModelMuxError:
        """The client's error for a non-2xx upstream answer (``providers.errors``' table)."""
        return error_from_response(provider, status, headers, body)

    def _count_error(self, provider: str, status: int, headers: Headers,
                     body: bytes) -> ModelMuxError:
        """A count call's error: "no such endpoint" lets the door estimate instead."""
        if status in UNAVAILABLE_STATUSES:
            return CountUnavailable(provider, str(status))
        return self.map_error(provider, status, headers, body)

    def counts_tokens(self, model: str) -> bool:
        return self.count_upstream is not None

    async def count_tokens(self, prompt: CountInput, model: str, stats: CallStats) -> Counted:
        """The server's own count, with ``tokenize`` set: vLLM's ``/tokenize`` on the chat
        turns, or llama.cpp's ``/apply-template`` then ``/tokenize`` on the prompt it made;
        both at the server's root (``base_url`` without ``/v1``).

        Raises:
            CountUnavailable: the server answered 404, 405 or 501 (no such endpoint).
        """
        upstream = self.count_upstream
        if upstream is None:
            return await super().count_tokens(prompt, model, stats)
        if self.tokenize == "vllm":
            answer = await upstream.fetch(self.root + "/tokenize", self.headers,
                                          vllm_body(model, prompt), stats)
            return Counted(vllm_count(answer, self.name), NATIVE)
        answer = await upstream.fetch(self.root + "/apply-template", self.headers,
                                      template_body(prompt), stats)
        text = template_prompt(answer, self.name)
        answer = await upstream.fetch(self.root + "/tokenize", self.headers,
                                      llamacpp_tokenize_body(text), stats)
        return Counted(token_list_length(answer, self.name), NATIVE)

    async def complete_text(self, call: TextCall) -> bytes:
        """The legacy ``/completions`` door, passed through as chat is."""
        return await self.complete(call, "/completions")

    def stream_text(self, call: TextCall) -> UpstreamStream:
        return self.stream(call, "/completions")

    async def complete(self, call: ChatCall | TextCall,  # type: ignore[override]
                       path: str = "/chat/completions") -> bytes:
        """POST the client's body (``model``, ``stream`` adjusted) to ``path`` (chat's unless
        told); the answer with the client's model name, its usage counted."""
        sent = upstream_body(call.raw, sent_model=call.public_model, sent_stream=call.sent_stream,
                             model=call.model, stream=False)
        url = self.url_for(call.model, path)
        body = await self.upstream.fetch(url, self.headers, sent, call.stats)
        return self.answer_of(body, call.public_model, call.stats)

    def answer_of(self, body: bytes, public_model: str, stats: CallStats) -> bytes:
        """The upstream's whole 2xx answer as the client gets it: ``model`` put back to
        ``public_model``, the usage counted on ``stats``.

        Raises:
            UpstreamError: not a JSON object, or an error body sent with a 2xx status.
        """
        try:
            fields = _fields.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamError(
                f"provider {self.name!r} sent a response that is not a JSON object: {exc}",
                code="upstream_protocol_error",
            ) from None
        if "choices" not in fields and (error := error_from_payload(self.name, body)):
            raise error  # some servers answer 200 with an error body
        fields["model"] = msgspec.Raw(_encode(public_model))
        if (usage := fields.get("usage")) is not None:
            note_usage(stats, usage)  # counted here: no second decode of the answer
        return _encode(fields)

    def direct(self, model: str) -> Direct | None:
        """How to POST ``model``'s chat completion with no await (``Direct``): None when a
        try needs one (credentials that refresh), HTTP/2 is asked for, or this type
        completes otherwise than ``complete`` here."""
        if type(self).complete is not OpenAICompatibleProvider.complete:
            return None
        return self.upstream.direct(self.url_for(model, "/chat/completions"), self.headers)

    def stream(self, call: ChatCall | TextCall,  # type: ignore[override]
               path: str = "/chat/completions") -> UpstreamStream:
        """The stream of ``path`` (chat's unless told), relayed as the client's chunks; with
        ``hide_usage`` the upstream is asked for usage and its usage chunk is kept from the
        client."""
        hide = call.hide_usage

        def relay() -> Relay:
            plain = ChunkRelay(self.name, call.public_model)
            return UsageHidden(plain) if hide else plain

        return self.upstream.stream(
            self.url_for(call.model, path),
            self.stream_headers,
            upstream_body(call.raw, sent_model=call.public_model, sent_stream=call.sent_stream,
                          model=call.model, stream=True, ask_usage=hide),
            relay,
            call.stats,
        )

    async def embed(self, call: EmbedCall) -> bytes:
        """``POST {url}/embeddings``: the client's body with ``model`` changed, cut into
        batches of ``embed_batch_size`` inputs sent one after another, joined in order."""
        url = self.url_for(call.model, "/embeddings")
        size = self.embed_batch_size
        items = len(call.request.items())
        bodies = batch_bodies(call.raw, call.request, call.model, size)
        sizes = [min(size, items - at) for at in range(0, items, size)] if len(bodies) > 1 \
            else [items]
        answers = [await self.upstream.fetch(url, self.headers, body, call.stats)
                   for body in bodies]
        answer, prompt = join_answers(self.name, answers, sizes, call.public_model)
        call.stats.tokens = (prompt, 0)
        return answer
