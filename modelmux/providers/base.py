"""The interface every provider implements, and the per-request call object it receives.

A provider turns one OpenAI chat request into an OpenAI response body (``complete``) or into
SSE-framed OpenAI chunks (``stream``). Errors before the first streamed byte are raised as
``ModelMuxError``; after it, a stream ends with an error event instead of ``[DONE]``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from typing import ClassVar

from modelmux.schemas.openai_chat import ChatCompletionRequest


class ChatCall:
    """One chat completion request, as a provider sees it."""

    __slots__ = ("request", "raw", "model", "public_model", "completion_id", "created", "request_id")

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
    ) -> None:
        self.request = request
        self.raw = raw
        self.model = model
        self.public_model = public_model
        self.completion_id = completion_id
        self.created = created
        self.request_id = request_id

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)

    @property
    def include_usage(self) -> bool:
        options = self.request.stream_options
        return bool(options is not None and options.include_usage)


class Provider(abc.ABC):
    """An upstream that serves some models."""

    type: ClassVar[str]

    def __init__(self, name: str, models: list[str]) -> None:
        self.name = name
        self.models = models

    @abc.abstractmethod
    async def complete(self, call: ChatCall) -> bytes:
        """The OpenAI ``chat.completion`` JSON body for a non-streaming call."""

    @abc.abstractmethod
    def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        """SSE-framed OpenAI chunks, ending with ``data: [DONE]`` or an error event."""

    async def aclose(self) -> None:
        """Release upstream connections and credentials."""
