"""The ``openai`` and ``huggingface`` providers: ``openai_compatible`` with their own defaults.

OpenAI: ``organization`` and ``project`` go out as ``OpenAI-Organization`` / ``OpenAI-Project``,
and OpenAI's ``x-ratelimit-*`` answer headers come back to the client. Hugging Face (the router,
TGI, Inference Endpoints): its ``{"error": "..."}`` bodies read as OpenAI errors, and a model
still loading (503 with ``estimated_time``) is a retryable ``model_loading`` error whose
``retry-after`` is that estimate.
"""

from __future__ import annotations

import math
import msgspec

from modelmux.config.providers import OpenAIConfig
from modelmux.errors import Headers, ModelMuxError, ServiceUnavailable
from modelmux.providers.errors import error_from_response, upstream_message
from modelmux.providers.headers import header_value
from modelmux.providers.openai_compatible import OpenAICompatibleProvider


class OpenAIProvider(OpenAICompatibleProvider):
    """OpenAI's API (``https://api.openai.com/v1`` unless ``base_url`` says otherwise)."""

    type = "openai"
    keep_prefix = b"x-ratelimit-"

    def own_headers(self, config: OpenAIConfig) -> Headers:
        out: Headers = []
        for name, value in ((b"openai-organization", config.organization),
                            (b"openai-project", config.project)):
            if value:
                out.append((name, header_value(value, f"{self.where}: {name.decode()}")))
        return out


class _Loading(msgspec.Struct):
    estimated_time: float | None = None


_loading = msgspec.json.Decoder(_Loading)


def estimated_time(body: bytes) -> float | None:
    """Hugging Face's ``estimated_time`` (seconds until a loading model is ready), if given."""
    try:
        found = _loading.decode(body).estimated_time
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return found if found is not None and math.isfinite(found) and found >= 0 else None


class HuggingFaceProvider(OpenAICompatibleProvider):
    """Hugging Face's OpenAI-compatible router, or a TGI / Inference Endpoint URL."""

    type = "huggingface"

    def map_error(self, provider: str, status: int, headers: Headers, body: bytes) -> ModelMuxError:
        """A 503 with ``estimated_time`` is a model loading: retryable after that estimate."""
        wait = estimated_time(body) if status == 503 else None
        if wait is None:
            return error_from_response(provider, status, headers, body)
        seconds = max(1, math.ceil(wait))
        error = ServiceUnavailable(
            f"provider {provider!r} is loading the model (about {seconds}s): "
            f"{upstream_message(body)}",
            code="model_loading", headers=[(b"retry-after", b"%d" % seconds)])
        error.retry_after = wait
        return error
