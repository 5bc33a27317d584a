"""Upstream OpenAI SSE in, client SSE out: the ``openai_compatible`` provider's stream relay.

Pure-Python twin of ``modelmux._speedups.chunk_relay`` (which extends this class and fuses the
per-event loop); ``modelmux.providers.openai_compatible`` picks one through ``_accel``.
Payload bytes pass through unchanged but for the top-level ``model``; events are decoded only
to find ``[DONE]``, errors and the usage chunk.
"""

from __future__ import annotations

import re

import msgspec

from modelmux.codec.sse import DONE, SSEDecoder, encode_data
from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.providers.base import Cache, Tokens, Usage, carries_usage, usage_only
from modelmux.providers.errors import error_from_payload

__all__ = ["ChunkRelay", "UsageHidden"]

_encode = msgspec.json.Encoder().encode


class _Model(msgspec.Struct):
    model: str = ""


_model_only = msgspec.json.Decoder(_Model)


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
        found = self._found_usage()
        return None if found is None else found.tokens

    @property
    def cache(self) -> Cache | None:
        """The usage chunk's cache reads and writes, when it has them."""
        found = self._found_usage()
        return None if found is None else found.cache

    def _found_usage(self) -> Usage | None:
        if self._usage is None:
            return None
        try:
            return usage_only.decode(self._usage).usage
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    def feed(self, data: bytes) -> list[bytes]:
        """Framed client chunks completed by ``data``.

        Raises:
            SSEProtocolError: the upstream event stream is malformed.
        """
        out: list[bytes] = []
        for event in self._decoder.feed(data):
            self._event(event.data, out)
        self._started = self._started or bool(out)
        return out

    def _event(self, payload: bytes, out: list[bytes]) -> None:
        """One event's payload: append what the client gets for it to ``out``."""
        if self._finished or not payload:
            return
        if payload == b"[DONE]":
            self._finished = True
            out.append(DONE)
            return
        if b'"error"' in payload and (error := error_from_payload(self.provider, payload)):
            self._fail(error, out)
            return
        if carries_usage(payload):
            self._usage = payload
        out.append(encode_data(self._rename(payload)))

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


_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_NULL = msgspec.Raw(b"null")


class UsageHidden:
    """A ``ChunkRelay`` whose usage the client did not ask for: the relay still reads it (for
    the cost), but the usage-only chunk (``choices: []``) is dropped and a usage object on any
    other chunk becomes ``null``. Only chunks that carry usage are looked at twice."""

    def __init__(self, relay: ChunkRelay) -> None:
        self._relay = relay

    @property
    def early_error(self) -> ModelMuxError | None:
        return self._relay.early_error

    @property
    def started(self) -> bool:
        return self._relay.started

    @property
    def finished(self) -> bool:
        return self._relay.finished

    @property
    def usage(self) -> Tokens | None:
        return self._relay.usage

    @property
    def cache(self) -> Cache | None:
        return self._relay.cache

    def feed(self, data: bytes) -> list[bytes]:
        """As ``ChunkRelay.feed``, without the usage; a feed whose events brought no usage
        object (the relay's note of it is unchanged) passes as it is."""
        relay = self._relay
        before = relay._usage
        out = relay.feed(data)
        if relay._usage is not before:
            out = [hidden for frame in out if (hidden := _hide(frame))]
        return out

    def close(self) -> list[bytes]:
        return self._relay.close()


def _hide(frame: bytes) -> bytes:
    """One framed event (``data: {...}\n\n``) without its usage; ``b""`` to drop it."""
    if not carries_usage(frame) or not frame.startswith(b"data: "):
        return frame
    try:
        fields = _fields.decode(frame[6:].rstrip(b"\n"))
    except (msgspec.DecodeError, msgspec.ValidationError):
        return frame
    if fields.get("choices", _NULL) in (msgspec.Raw(b"[]"), _NULL):
        return b""
    fields["usage"] = _NULL
    return encode_data(_encode(fields))
