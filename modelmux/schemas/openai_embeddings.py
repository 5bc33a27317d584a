"""OpenAI's "Embeddings > Create embeddings" request, the fields ModelMux reads.

Other members (``user``, vendor extras) travel on to the upstream in the client's own bytes.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Tokens = list[int]
EmbeddingInput = str | list[str | int | Tokens]
"""A string, or a list of strings, of token ids (one token array) or of token arrays; the
list's members must all be of one kind (checked after decoding: msgspec unions hold one list)."""


class EmbeddingRequest(msgspec.Struct, frozen=True):
    """``input`` is a string, a list of strings, a token array or a list of token arrays."""

    model: str
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        value = self.input
        if isinstance(value, list) and value:
            kind = type(value[0])
            if any(type(item) is not kind for item in value):
                raise ValueError("`input` must be a string or a list of strings, a token array "
                                 "or a list of token arrays, not a mix")

    def items(self) -> list[str] | list[Tokens]:
        """The inputs as a list, one per vector the answer holds."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and isinstance(value[0], int):
            return [value]  # type: ignore[list-item]  # one token array
        return value  # type: ignore[return-value]

    @property
    def single(self) -> bool:
        """True when ``input`` is one string or one token array (not a list of them)."""
        value = self.input
        return isinstance(value, str) or bool(value and isinstance(value[0], int))


embedding_decoder = msgspec.json.Decoder(EmbeddingRequest)
