"""What every vendor embeddings translator shares: the texts of an OpenAI request, the vendor
extras a client may add to it, and OpenAI's answer built from plain float vectors.

Reference: OpenAI API "Embeddings > Create embeddings" and "The embedding object": ``data`` in
input order, each ``embedding`` a list of floats or, with ``encoding_format: base64``, the
base64 of its little-endian float32 bytes (what the OpenAI SDKs ask for and decode).
"""

from __future__ import annotations

import base64
import struct
from typing import TypeVar

import msgspec

from modelmux.errors import InvalidRequest, UpstreamError
from modelmux.schemas.openai_embeddings import EmbeddingRequest

_encode = msgspec.json.Encoder().encode
T = TypeVar("T")


class EmbedOptions(msgspec.Struct, frozen=True):
    """Vendor members a client may add to an OpenAI embeddings body (``extra_body``):
    Cohere's ``input_type`` and Gemini's ``task_type``; everything else is ignored."""

    input_type: str | None = None
    task_type: str | None = None


_options = msgspec.json.Decoder(EmbedOptions)


def embed_options(raw: bytes) -> EmbedOptions:
    """The vendor extras in the client's body ``raw``.

    Raises:
        InvalidRequest: ``input_type`` or ``task_type`` is given but is not a string.
    """
    try:
        return _options.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidRequest(f"Invalid embeddings request: {exc}") from None


def text_inputs(request: EmbeddingRequest, provider: str, kind: str) -> list[str]:
    """The request's inputs as texts, for a vendor API that takes no token ids.

    Raises:
        InvalidRequest: the input is a token array (or a list of them).
    """
    items = request.items()
    if items and not isinstance(items[0], str):
        raise InvalidRequest(
            f"provider {provider!r} ({kind}) embeds text only; send `input` as a string or a "
            "list of strings, not token arrays.", param="input", code="invalid_value")
    return items  # type: ignore[return-value]


def slices(count: int, size: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each batch of at most ``size`` among ``count`` inputs, in order."""
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def decode_answer(decoder: msgspec.json.Decoder[T], answer: bytes, provider: str,
                  what: str) -> T:
    """A vendor's embeddings ``answer`` through ``decoder``.

    Raises:
        UpstreamError: the answer is not that shape (``what`` names it in the message).
    """
    try:
        return decoder.decode(answer)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamError(f"provider {provider!r} sent an unreadable {what}: {exc}",
                            code="upstream_protocol_error") from None


def vector_count_error(provider: str, got: int, want: int) -> UpstreamError:
    return UpstreamError(f"provider {provider!r} sent {got} embeddings for {want} inputs",
                         code="upstream_protocol_error")


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def openai_embeddings(vectors: list[list[float]], *, model: str, encoding_format: str,
                      prompt_tokens: int) -> bytes:
    """OpenAI's ``object: list`` answer for ``vectors`` in input order.

    Raises:
        UpstreamError: base64 was asked for and a value does not fit in a float32.
    """
    as_base64 = encoding_format == "base64"
    try:
        data = [{"object": "embedding", "index": index,
                 "embedding": _base64(vector) if as_base64 else vector}
                for index, vector in enumerate(vectors)]
    except OverflowError:
        raise UpstreamError("the provider sent an embedding value outside float32's range",
                            code="upstream_protocol_error") from None
    return _encode({"object": "list", "data": data, "model": model,
                    "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})
