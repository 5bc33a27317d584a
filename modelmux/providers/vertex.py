"""The ``vertex`` provider: Claude on Google Vertex AI, an endpoint profile over ``claude``,
and Gemini models of the same project through the ``gemini`` provider's translators.

Reference: Google Cloud "Use Claude models" / Anthropic "Claude on Vertex AI": ``POST
https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/publishers/
anthropic/models/{model}:rawPredict`` (``:streamRawPredict`` to stream; region ``global`` uses
``aiplatform.googleapis.com``), OAuth ``Authorization: Bearer``, and a body without ``model``
that carries ``"anthropic_version": "vertex-2023-10-16"``. Gemini models (``gemini-*``): Vertex AI
"Generate content with the Gemini API": ``.../publishers/google/models/{model}:generateContent``
(``:streamGenerateContent?alt=sse``), the AI Studio body, the same OAuth token. Embeddings:
"Get text embeddings", ``.../publishers/google/models/{model}:predict``
(``translate.embed_vertex``). count_tokens: Claude's count-tokens model (``claude_native``), and
``.../publishers/google/models/{model}:countTokens`` for Gemini (``providers.token_count``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from modelmux.auth.google import CredentialsError, GoogleTokenSource, load_credentials
from modelmux.config.load import ConfigError
from modelmux.config.providers import VertexConfig
from modelmux.errors import Headers
from modelmux.providers.base import CallStats, ChatCall, EmbedCall, RetryPolicy
from modelmux.providers.claude import ClaudeProvider
from modelmux.providers.claude_endpoint import ClaudeEndpoint
from modelmux.providers.embed_batch import embed_batches
from modelmux.providers.env import expand_env
from modelmux.providers.gemini import GeminiProvider
from modelmux.providers.headers import (
    check_base_url,
    extra_headers,
    json_headers,
    merge_headers,
)
from modelmux.providers.token_count import CountInput, Counted, vertex_count_body
from modelmux.providers.transport import UpstreamStream
from modelmux.translate.embed_vertex import vertex_embed_batch, vertex_embed_body, vertex_vectors
from modelmux.translate.embeddings import embed_options, text_inputs
from modelmux.upstream import ConnectionPool

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def vertex_origin(region: str, base_url: str | None) -> str:
    """``scheme://host`` of the Vertex endpoint for ``region``, unless ``base_url`` overrides it."""
    if base_url:
        return base_url
    if region == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{region}-aiplatform.googleapis.com"


def vertex_url(origin: str, project: str, region: str, model: str, stream: bool) -> str:
    """The rawPredict (or streamRawPredict) URL; every path segment is percent-encoded."""
    method = "streamRawPredict" if stream else "rawPredict"
    return (f"{origin}/v1/projects/{quote(project, safe='')}/locations/{quote(region, safe='')}"
            f"/publishers/anthropic/models/{quote(model, safe='@')}:{method}")


def is_gemini(model: str) -> bool:
    """True for a model Vertex serves under ``publishers/google`` (``gemini-2.0-flash``, ...)."""
    return model.startswith("gemini")


def vertex_gemini_url(origin: str, project: str, region: str, model: str, stream: bool) -> str:
    """The publishers/google ``generateContent`` (or streaming) URL, segments percent-encoded."""
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return google_url(origin, project, region, model, method)


def google_url(origin: str, project: str, region: str, model: str, method: str) -> str:
    """``method`` of a publishers/google model, every path segment percent-encoded."""
    return (f"{origin}/v1/projects/{quote(project, safe='')}/locations/{quote(region, safe='')}"
            f"/publishers/google/models/{quote(model, safe='@')}:{method}")


class VertexGemini(GeminiProvider):
    """The Gemini half of a ``vertex`` provider: its errors name the ``vertex`` type."""

    type = "vertex"

    def count_body(self, gemini: dict[str, Any], model: str) -> bytes:
        return vertex_count_body(gemini)


class GoogleBearerAuth:
    """``Authorization: Bearer`` from a ``GoogleTokenSource``; a 401 forces one refresh."""

    def __init__(self, source: GoogleTokenSource) -> None:
        self.source = source

    async def headers(self) -> Headers:
        token = await self.source.token()
        return [(b"authorization", b"Bearer " + token.encode("latin-1"))]

    def refresh(self, sent: Headers) -> bool:
        for name, value in sent:
            if name == b"authorization":
                self.source.invalidate(value.removeprefix(b"Bearer ").decode("latin-1"))
        return True


def token_source(config: VertexConfig) -> GoogleTokenSource:
    """The token source for the configured credentials (ADC when none is named).

    Raises:
        ConfigError: the named credentials cannot be loaded.
    """
    where = f"provider {config.name!r}"
    file = config.credentials_file
    if file is not None:
        file = expand_env(file, where=f"{where}: credentials_file")
    try:
        credentials = load_credentials(file=file, json_text=config.credentials_json,
                                       env=config.credentials_env)
    except CredentialsError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return GoogleTokenSource(credentials, label=where)


class VertexProvider(ClaudeProvider):
    """Claude and Gemini models in one Google Cloud project and region; the model name picks
    the publisher (``is_gemini``)."""

    type = "vertex"

    def __init__(
        self,
        config: VertexConfig,
        pool: ConnectionPool,
        *,
        retry: RetryPolicy | None = None,
        tokens: GoogleTokenSource | None = None,
    ) -> None:
        """Raises: ConfigError: a bad region, ``base_url``, header, ``${ENV}`` or credentials."""
        where = f"provider {config.name!r}"
        project = expand_env(config.project, where=f"{where}: project")
        region = expand_env(config.region, where=f"{where}: region")
        if not _REGION.fullmatch(region):
            raise ConfigError(f"{where}: region {region!r} is not a Google Cloud location name")
        if not project:
            raise ConfigError(f"{where}: project is empty")
        base = config.base_url
        if base is not None:
            base = check_base_url(expand_env(base, where=f"{where}: base_url"), where)
        origin = vertex_origin(region, base)
        self.tokens = tokens or token_source(config)
        headers = merge_headers(json_headers(), extra_headers(config.headers, where))
        auth = GoogleBearerAuth(self.tokens)
        policy = retry or RetryPolicy(max_retries=config.max_retries)
        self.embed_url: Callable[[str], str] = (
            lambda model: google_url(origin, project, region, model, "predict"))
        self.embed_batch_size = config.embed_batch_size
        self.embed_task_type = config.embed_task_type
        self.gemini = VertexGemini(
            config.name, list(config.models), pool,
            url=lambda model, stream: vertex_gemini_url(origin, project, region, model, stream),
            headers=headers, auth=auth, timeouts=config.timeouts.timeouts(), retry=policy,
            http2=config.http2,
            count_url=lambda model: google_url(origin, project, region, model, "countTokens"))
        endpoint = ClaudeEndpoint(
            url=lambda model, stream: vertex_url(origin, project, region, model, stream),
            headers=headers,
            auth=auth,
            model_in_body=False,
            body_fields={"anthropic_version": VERTEX_ANTHROPIC_VERSION},
            # Google Cloud "Count tokens for Claude models": rawPredict on the one count-tokens
            # model, the counted model in the body; betas stay in the anthropic-beta header
            count_url=lambda model: vertex_url(origin, project, region, "count-tokens", False),
            count_fields={"anthropic_version": VERTEX_ANTHROPIC_VERSION},
        )
        super().__init__(
            config.name,
            list(config.models),
            endpoint,
            pool,
            timeouts=config.timeouts.timeouts(),
            retry=policy,
            default_max_tokens=config.default_max_tokens,
            http2=config.http2,
        )

    def speaks_messages(self, model: str) -> bool:
        return not is_gemini(model)

    def counts_tokens(self, model: str) -> bool:
        return is_gemini(model)

    async def count_tokens(self, prompt: CountInput, model: str, stats: CallStats) -> Counted:
        if is_gemini(model):
            return await self.gemini.count_tokens(prompt, model, stats)
        return await super().count_tokens(prompt, model, stats)

    async def complete(self, call: ChatCall) -> bytes:
        if is_gemini(call.model):
            return await self.gemini.complete(call)
        return await super().complete(call)

    def stream(self, call: ChatCall) -> UpstreamStream:
        if is_gemini(call.model):
            return self.gemini.stream(call)
        return super().stream(call)

    async def embed(self, call: EmbedCall) -> bytes:
        """Google text embedding models through ``:predict``, ``embed_batch_size`` instances a
        request (one for ``gemini-embedding-*``); usage from Vertex's token statistics.

        Raises:
            InvalidRequest: token-array input or a non-string ``task_type``.
        """
        texts = text_inputs(call.request, self.name, self.type)
        task = embed_options(call.raw).task_type or self.embed_task_type
        dimensions = call.request.dimensions
        size = vertex_embed_batch(call.model, self.embed_batch_size)
        return await embed_batches(
            self.gemini.upstream, self.embed_url(call.model), self.gemini.headers, call, texts,
            size,
            lambda batch: vertex_embed_body(batch, dimensions=dimensions, task_type=task),
            lambda answer, want: vertex_vectors(answer, self.name, want))

    async def aclose(self) -> None:
        await self.tokens.aclose()
