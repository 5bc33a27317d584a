"""The ``openai_compatible`` provider: any ``POST {base_url}/chat/completions`` server.

Reference: OpenAI API "Chat > Create chat completion" and "The chat completion chunk object"
(vLLM, llama.cpp, LM Studio and OpenAI itself speak it). The client's body goes on with only
``model`` changed; stream payloads pass through as bytes, with the top-level ``model`` put back
to the name the client asked for. Events are decoded only to find ``[DONE]`` and errors.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

import msgspec

from modelmux.codec.sse import DONE, SSEDecoder, encode_data
from modelmux.config.load import ConfigError
from modelmux.config.schema import OpenAICompatibleConfig
from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.providers.base import ChatCall, Provider, Tokens, carries_usage, usage_of
from modelmux.providers.env import expand_env
from modelmux.providers.errors import error_from_payload
from modelmux.providers.headers import (
    check_base_url,
    extra_headers,
    json_headers,
    merge_headers,
)
from modelmux.providers.transport import Headers, RetryPolicy, StaticAuth, Upstream
from modelmux.upstream import ConnectionPool

_encode = msgspec.json.Encoder().encode
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])


class _Model(msgspec.Struct):
    model: str = ""


_model_only = msgspec.json.Decoder(_Model)
_TRUE = msgspec.Raw(b"true")
_FALSE = msgspec.Raw(b"false")


def upstream_body(raw: bytes, *, sent_model: str, sent_stream: bool, model: str,
                  stream: bool) -> bytes:
    """The client's body for the upstream: ``raw`` itself when ``model`` and ``stream`` match
    what the client sent (``sent_model``, ``sent_stream``: known from the front door's decode,
    so the common case parses nothing again).

    Otherwise only those members change (the front door may turn a stream into one JSON
    answer or back; ``stream_options`` goes when streaming is turned off).

    Raises:
        msgspec.DecodeError / msgspec.ValidationError: ``raw`` is not a JSON object.
    """
    if sent_model == model and sent_stream == stream:
        return raw
    fields = _fields.decode(raw)
    fields["model"] = msgspec.Raw(_encode(model))
    if sent_stream != stream:
        fields["stream"] = _TRUE if stream else _FALSE
        if not stream:
            fields.pop("stream_options", None)
    return _encode(fields)


class ChunkRelay:
    """Upstream OpenAI SSE in, client SSE out: payload bytes unchanged but for ``model``.

    The model the upstream reports is read from the first chunk only, with the exact bytes of
    its ``"model": <name>`` member; every chunk then gets one ``bytes.replace`` of those bytes.
    A chunk that spells the member otherwise keeps the upstream's name (informational anyway).
    """

    def __init__(self, provider: str, public_model: str) -> None:
        self.provider = provider
        self.early_error: ModelMuxError | None = None
        self._decoder = SSEDecoder()
        self._public = _encode(public_model)
        self._swap: tuple[bytes, bytes] | None = None
        self._usage: bytes | None = None
        self._started = False
        self._finished = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def usage(self) -> Tokens | None:
        """From the final usage chunk (``stream_options.include_usage``), when one came."""
        return None if self._usage is None else usage_of(self._usage)

    def feed(self, data: bytes) -> list[bytes]:
        """Framed client chunks completed by ``data``.

        Raises:
            SSEProtocolError: the upstream event stream is malformed.
        """
        out: list[bytes] = []
        for event in self._decoder.feed(data):
            payload = event.data
            if self._finished or not payload:
                continue
            if payload == b"[DONE]":
                self._finished = True
                out.append(DONE)
                continue
            if b'"error"' in payload and (error := error_from_payload(self.provider, payload)):
                self._fail(error, out)
                continue
            if carries_usage(payload):
                self._usage = payload
            out.append(encode_data(self._rename(payload)))
        self._started = self._started or bool(out)
        return out

    def close(self) -> list[bytes]:
        """End of the upstream body: an error unless ``[DONE]`` or an error came first."""
        out: list[bytes] = []
        if not self._finished:
            self._fail(UpstreamError(
                f"provider {self.provider!r} ended the stream without [DONE]",
                code="upstream_stream_truncated",
            ), out)
        return out

    def _fail(self, error: ModelMuxError, out: list[bytes]) -> None:
        self._finished = True
        if self._started or out:
            out.append(encode_data(error.body()))
        else:
            self.early_error = error

    def _rename(self, payload: bytes) -> bytes:
        swap = self._swap
        if swap is None:
            swap = self._swap = self._learn(payload)
        old, new = swap
        if old == new or old not in payload:
            return payload
        return payload.replace(old, new, 1)

    def _learn(self, payload: bytes) -> tuple[bytes, bytes]:
        """The exact ``"model": "<reported>"`` bytes of this upstream, and their replacement."""
        try:
            reported = _model_only.decode(payload).model
        except (msgspec.DecodeError, msgspec.ValidationError):
            return b"", b""
        found = re.search(rb'"model"\s*:\s*' + re.escape(_encode(reported)), payload)
        if found is None:
            return b"", b""
        return found.group(0), b'"model":' + self._public


class OpenAICompatibleProvider(Provider):
    """Relays chat completions to an OpenAI-format server."""

    type = "openai_compatible"

    def __init__(
        self,
        config: OpenAICompatibleConfig,
        pool: ConnectionPool,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Raises: ConfigError: an unset ``${ENV}``, a bad ``base_url`` or header."""
        super().__init__(config.name, list(config.models))
        where = f"provider {config.name!r}"
        base = check_base_url(expand_env(config.base_url, where=f"{where}: base_url"), where)
        self.url = base + "/chat/completions"
        self.headers: Headers = merge_headers(
            json_headers(), extra_headers(config.headers, where)
        )
        auth: Headers = []
        if config.api_key:
            key = expand_env(config.api_key, where=f"{where}: api_key")
            try:
                auth = [(b"authorization", b"Bearer " + key.encode("latin-1"))]
            except UnicodeEncodeError:
                raise ConfigError(f"{where}: api_key is not latin-1 text") from None
        policy = retry or RetryPolicy(max_retries=config.max_retries)
        self.upstream = Upstream(config.name, pool, StaticAuth(auth), config.timeouts.timeouts(),
                                 policy, http2=config.http2)

    async def complete(self, call: ChatCall) -> bytes:
        sent = upstream_body(call.raw, sent_model=call.public_model, sent_stream=call.sent_stream,
                             model=call.model, stream=False)
        body = await self.upstream.fetch(self.url, self.headers, sent, call.stats)
        try:
            fields = _fields.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamError(
                f"provider {self.name!r} sent a response that is not a JSON object: {exc}",
                code="upstream_protocol_error",
            ) from None
        if "choices" not in fields and (error := error_from_payload(self.name, body)):
            raise error  # some servers answer 200 with an error body
        fields["model"] = msgspec.Raw(_encode(call.public_model))
        return _encode(fields)

    def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        return self.upstream.relay(
            self.url,
            [*self.headers, (b"accept", b"text/event-stream")],
            upstream_body(call.raw, sent_model=call.public_model, sent_stream=call.sent_stream,
                          model=call.model, stream=True),
            lambda: ChunkRelay(self.name, call.public_model),
            call.stats,
        )
