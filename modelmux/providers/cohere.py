"""The ``cohere`` provider: Cohere's v2 chat API.

Reference: Cohere API "Chat" (``POST {base}/v2/chat``, ``Authorization: Bearer <key>``,
``"stream": true`` for SSE). Translation is ``translate.chat_to_cohere``, ``cohere_to_chat``
and ``CohereStreamTranslator``; streaming goes through the shared ``EventRelay``. Embeddings go to
Cohere API "Embed (v2)", ``POST {base}/v2/embed``, through ``translate.embed_cohere``.
count_tokens goes to Cohere API "Tokenize", ``POST {base}/v1/tokenize`` (``providers.token_count``).
"""

from __future__ import annotations


import msgspec

from modelmux.config.providers import CohereConfig
from modelmux.errors import InvalidRequest
from modelmux.providers.base import CallStats, ChatCall, EmbedCall, Provider, RetryPolicy
from modelmux.providers.embed_batch import embed_batches
from modelmux.providers.env import expand_env
from modelmux.providers.event_relay import chat_answer, relay_events
from modelmux.providers.gemini import api_key_auth
from modelmux.providers.headers import check_base_url, extra_headers, json_headers, merge_headers
from modelmux.providers.token_count import (
    TEXT_ONLY,
    CountInput,
    Counted,
    cohere_pieces,
    cohere_tokenize_body,
    token_list_length,
)
from modelmux.providers.transport import ProviderClient, UpstreamStream
from modelmux.translate.chat_to_cohere import chat_to_cohere
from modelmux.translate.cohere_stream import CohereStreamTranslator
from modelmux.translate.cohere_to_chat import cohere_to_chat
from modelmux.translate.embed_cohere import cohere_embed_body, cohere_vectors
from modelmux.translate.embeddings import embed_options, text_inputs
from modelmux.upstream import ConnectionPool

_encode = msgspec.json.Encoder().encode


class CohereProvider(Provider):
    """Cohere chat models (``command-r-plus``, ``command-a``, ...)."""

    type = "cohere"

    def __init__(self, config: CohereConfig, pool: ConnectionPool, *,
                 retry: RetryPolicy | None = None) -> None:
        """Raises: ConfigError: an unset ``${ENV}``, an empty key, a bad URL or header."""
        super().__init__(config.name, list(config.models))
        where = f"provider {config.name!r}"
        base = check_base_url(expand_env(config.base_url, where=f"{where}: base_url"), where)
        self.url = base.removesuffix("/v2") + "/v2/chat"
        self.embed_url = base.removesuffix("/v2") + "/v2/embed"
        self.tokenize_url = base.removesuffix("/v2") + "/v1/tokenize"
        self.embed_batch_size = config.embed_batch_size
        self.embed_input_type = config.embed_input_type
        key = expand_env(config.api_key, where=f"{where}: api_key")
        self.headers = merge_headers(json_headers(), extra_headers(config.headers, where))
        self.retry = retry or RetryPolicy(max_retries=config.max_retries)
        self.upstream = ProviderClient(config.name, pool,
                                       api_key_auth(key, b"authorization", where, b"Bearer "),
                                       config.timeouts.timeouts(), self.retry, http2=config.http2)

    def body(self, call: ChatCall) -> bytes:
        """Raises: InvalidRequest: what Cohere cannot do, naming this provider."""
        try:
            return _encode(chat_to_cohere(call.request, model=call.model, provider=self.name))
        except InvalidRequest as exc:
            raise InvalidRequest(f"provider {self.name!r} ({self.type}): {exc.message}",
                                 param=exc.param, code=exc.code) from None

    async def complete(self, call: ChatCall) -> bytes:
        body = self.body(call)
        answer = await self.upstream.fetch(self.url, self.headers, body, call.stats)
        completion = cohere_to_chat(answer, model=call.public_model,
                                    completion_id=call.completion_id, created=call.created)
        return chat_answer(completion, call.stats)

    def stream(self, call: ChatCall) -> UpstreamStream:
        body = self.body(call)
        return relay_events(self.upstream, self.url, self.headers, body, call,
                            CohereStreamTranslator)

    async def embed(self, call: EmbedCall) -> bytes:
        """``/v2/embed`` in batches of ``embed_batch_size`` texts; ``input_type`` in the
        client's body, else the provider's ``embed_input_type``, is sent with each.

        Raises:
            InvalidRequest: token-array input or a non-string ``input_type``.
        """
        texts = text_inputs(call.request, self.name, self.type)
        input_type = embed_options(call.raw).input_type or self.embed_input_type
        dimensions = call.request.dimensions
        return await embed_batches(
            self.upstream, self.embed_url, self.headers, call, texts, self.embed_batch_size,
            lambda batch: cohere_embed_body(batch, model=call.model, input_type=input_type,
                                            dimensions=dimensions),
            lambda answer, want: cohere_vectors(answer, self.name, want))

    def counts_tokens(self, model: str) -> bool:
        return True

    async def count_tokens(self, prompt: CountInput, model: str, stats: CallStats) -> Counted:
        """The prompt's texts (system, turns, tool calls and results, tool definitions) through
        Cohere's tokenizer for ``model``, one ``/v1/tokenize`` call per 65536 characters.

        Not counted: the chat template Cohere wraps turns and tools in (tens of tokens a
        turn); each image or document adds ``token_estimate.IMAGE_TOKENS``, an estimate.

        Raises:
            CountUnavailable: the prompt needs more than ``COHERE_MAX_PIECES`` calls.
        """
        tokens = prompt.media_tokens
        for piece in cohere_pieces(prompt.texts, self.name):
            answer = await self.upstream.fetch(self.tokenize_url, self.headers,
                                               cohere_tokenize_body(piece, model), stats)
            tokens += token_list_length(answer, self.name)
        return Counted(tokens, TEXT_ONLY)
