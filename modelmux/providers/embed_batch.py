"""Embedding inputs cut to a provider's batch limit, and the answers joined back in order.

An OpenAI-format ``/embeddings`` server takes at most so many inputs a request (OpenAI: 2048).
A longer list goes out as several requests, each the client's body with ``model`` and ``input``
replaced; the answers' ``data`` are joined with ``index`` counted across batches and ``usage``
summed, so the client sees one answer. Vendor APIs with their own embed format (Gemini,
Cohere) batch through ``embed_batches`` with their translators.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from modelmux.errors import Headers, UpstreamError
from modelmux.providers.base import EmbedCall
from modelmux.providers.errors import error_from_payload
from modelmux.providers.transport import ProviderClient
from modelmux.schemas.openai_embeddings import EmbeddingRequest
from modelmux.translate.embeddings import openai_embeddings, slices

_encode = msgspec.json.Encoder().encode
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])


class _Item(msgspec.Struct):
    index: int = 0


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    total_tokens: int = 0


_items = msgspec.json.Decoder(list[msgspec.Raw])
_item = msgspec.json.Decoder(_Item)
_usage = msgspec.json.Decoder(_Usage | None)


def batch_bodies(raw: bytes, request: EmbeddingRequest, model: str, size: int) -> list[bytes]:
    """The upstream bodies for ``request`` (decoded from ``raw``): one when its inputs fit in
    ``size``, else one per ``size`` inputs, in order."""
    fields = _fields.decode(raw)
    fields["model"] = msgspec.Raw(_encode(model))
    items = request.items()
    if request.single or len(items) <= size:
        return [_encode(fields)]
    out = []
    for start in range(0, len(items), size):
        fields["input"] = msgspec.Raw(_encode(items[start:start + size]))
        out.append(_encode(fields))
    return out


def _protocol(provider: str, what: str) -> UpstreamError:
    return UpstreamError(f"provider {provider!r} sent an embeddings answer {what}",
                         code="upstream_protocol_error")


def join_answers(provider: str, answers: list[bytes], sizes: list[int],
                 public_model: str) -> tuple[bytes, int]:
    """One answer from the answers to each batch (``sizes[i]`` inputs in batch ``i``), with
    ``model`` set to ``public_model``; and the prompt tokens they used.

    Raises:
        ModelMuxError: an answer is an error body, not JSON, or has the wrong number of vectors.
    """
    data: list[msgspec.Raw] = []
    prompt = total = 0
    first: dict[str, msgspec.Raw] = {}
    for answer, size in zip(answers, sizes, strict=True):
        try:
            fields = _fields.decode(answer)
            items = _items.decode(fields["data"]) if "data" in fields else None
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise _protocol(provider, "that is not a JSON object with a data list") from None
        if items is None:
            raise error_from_payload(provider, answer) or _protocol(provider, "without data")
        if len(items) != size:
            raise _protocol(provider, f"with {len(items)} vectors for {size} inputs")
        first = first or fields
        offset = len(data)
        ordered = sorted(((_item.decode(item).index, item) for item in items),
                         key=lambda pair: pair[0])
        for index, item in ordered:
            entry = _fields.decode(item)
            entry["index"] = msgspec.Raw(b"%d" % (offset + index))
            data.append(msgspec.Raw(_encode(entry)))
        usage = _usage.decode(fields["usage"]) if "usage" in fields else None
        if usage is not None:
            prompt += usage.prompt_tokens
            total += usage.total_tokens or usage.prompt_tokens
    first["data"] = msgspec.Raw(_encode(data))
    first["model"] = msgspec.Raw(_encode(public_model))
    first["usage"] = msgspec.Raw(_encode({"prompt_tokens": prompt, "total_tokens": total}))
    return _encode(first), prompt


async def embed_batches(upstream: ProviderClient, url: str, headers: Headers, call: EmbedCall,
                        texts: list[str], size: int, body: Callable[[list[str]], bytes],
                        read: Callable[[bytes, int], tuple[list[list[float]], int]]) -> bytes:
    """Embed ``texts`` through a vendor API that takes at most ``size`` a request: ``body``
    makes each batch's request, ``read`` its vectors and prompt tokens; the batches go one
    after another and the client gets OpenAI's answer, in input order, usage summed."""
    vectors: list[list[float]] = []
    tokens = 0
    for start, end in slices(len(texts), size):
        answer = await upstream.fetch(url, headers, body(texts[start:end]), call.stats)
        got, used = read(answer, end - start)
        vectors += got
        tokens += used
    call.stats.tokens = (tokens, 0)
    return openai_embeddings(vectors, model=call.public_model,
                             encoding_format=call.request.encoding_format, prompt_tokens=tokens)
