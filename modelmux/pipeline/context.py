"""``RequestContext``: one request as the pipeline's stages see it, whichever door it came in by.

A front door decodes the client's request into a context; each stage reads it and may change
it (a middleware may rewrite the body before routing); the call stage answers from it; the
answer's outcome is written back for the stages that observe answers. It holds no socket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from modelmux.errors import Headers
from modelmux.schemas.openai_chat import ChatCompletionRequest, request_decoder
from modelmux.schemas.openai_completions import CompletionRequest, completion_decoder
from modelmux.schemas.openai_embeddings import EmbeddingRequest, embedding_decoder

if TYPE_CHECKING:
    from modelmux.observability.record import RequestRecord
    from modelmux.routing.models import DeploymentSpec
    from modelmux.routing.router import Estimate
    from modelmux.tenancy.records import Identity


class RequestContext:
    """One request in flight through the pipeline.

    ``request`` is the decoded internal call (OpenAI chat's shape; an ``EmbeddingRequest`` or
    a ``CompletionRequest`` at the ``openai.embeddings`` and ``openai.completions`` doors) and
    ``body`` the bytes it was decoded from: the two always agree (``replace_body`` and
    ``replace_json`` re-decode). ``plan`` is the route stage's ordered deployments. After the
    answer: ``status``, ``answer`` (a non-streamed body; None for a stream) and ``error``. ``state`` is for stages and plugins to
    leave notes for later stages, keyed by their own name.
    """

    __slots__ = ("door", "request", "body", "headers", "request_id", "record", "streamed",
                 "estimate", "facts", "plan", "status", "answer", "error", "state", "identity",
                 "client", "response_headers")

    def __init__(self, door: str,
                 request: ChatCompletionRequest | EmbeddingRequest | CompletionRequest,
                 body: bytes, headers: Headers, request_id: str, record: RequestRecord,
                 client: str = "", *, response_headers: Headers | None = None) -> None:
        self.door = door
        self.request = request
        self.body = body
        self.headers = headers
        self.request_id = request_id
        self.record = record
        self.streamed = False  # the client gets a stream (decided by the door's delivery mode)
        self.estimate: Estimate | None = None
        self.facts: dict[str, object] = {}
        self.plan: list[DeploymentSpec] = []
        self.status = 0
        self.answer: bytes | None = None
        self.error: Exception | None = None
        self.state: dict[str, Any] = {}
        self.identity: Identity | None = None  # set by the authenticate stage when auth is on
        self.client = client  # the peer as "host:port" (failed logins are counted per host)
        self.response_headers: Headers = [] if response_headers is None else response_headers

    @property
    def model(self) -> str:
        """The model the client asked for (after any middleware rewrote it)."""
        return self.request.model

    def header(self, name: bytes) -> bytes | None:
        """The first value of a request header (``name`` in lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def json(self) -> Any:
        """The request body as plain JSON values (dicts and lists), decoded on each call."""
        return msgspec.json.decode(self.body)

    def replace_json(self, value: Any) -> None:
        """Replace the request with ``value`` (plain JSON values), re-validated.

        Raises:
            msgspec.ValidationError: ``value`` is not a valid chat completion request.
        """
        self.replace_body(msgspec.json.encode(value))

    def replace_body(self, body: bytes) -> None:
        """Replace the request body; the decoded request follows it.

        Raises:
            msgspec.DecodeError, msgspec.ValidationError: not a valid request of its kind.
        """
        decoder: msgspec.json.Decoder[Any] = (
            embedding_decoder if isinstance(self.request, EmbeddingRequest)
            else completion_decoder if isinstance(self.request, CompletionRequest)
            else request_decoder)
        self.request = decoder.decode(body)
        self.body = body
