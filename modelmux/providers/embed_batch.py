"""Embedding inputs cut to a provider's batch limit, and the answers joined back in order.

An OpenAI-format ``/embeddings`` server takes at most so many inputs a request (OpenAI: 2048).
A longer list goes out as several requests, each the client's body with ``model`` and ``input``
replaced; the answers' ``data`` are joined with ``index`` counted across batches and ``usage``
summed, so the client sees one answer.
"""

from __future__ import annotations

import msgspec

from modelmux.errors import UpstreamError
from modelmux.providers.errors import error_from_payload
from modelmux.schemas.openai_embeddings import EmbeddingRequest

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
