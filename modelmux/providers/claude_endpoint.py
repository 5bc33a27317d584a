"""``ClaudeEndpoint``: what one Claude endpoint (Anthropic, Vertex, ...) declares as data.

Shared by the translated path (``claude``) and the native Messages path (``claude_native``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelmux.errors import Headers
from modelmux.providers.transport import Auth


@dataclass(frozen=True, slots=True)
class ClaudeEndpoint:
    """What one Claude endpoint needs beyond the shared translation, declared as data.

    ``url(model, stream)`` builds the request URL; ``model_in_body`` is False when the URL names
    the model (Vertex); ``body_fields`` are added to every request body. ``count_url(model)``
    is the endpoint's token counter (None: it has none), whose body gets ``count_fields``.
    """

    url: Callable[[str, bool], str]
    headers: Headers
    auth: Auth
    model_in_body: bool = True
    body_fields: Mapping[str, Any] = field(default_factory=dict)
    count_url: Callable[[str], str] | None = None
    count_fields: Mapping[str, Any] = field(default_factory=dict)
