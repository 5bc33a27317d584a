"""CORS for browser clients: origin checks, preflight answers and response headers.

Off unless ``[server.cors] allow_origins`` lists origins (``"*"`` allows any). Header names in
``allow_headers`` may end in ``*`` to allow a family such as the OpenAI SDK's ``x-stainless-*``;
the default also allows the Anthropic SDK's ``x-api-key`` and ``anthropic-*`` headers.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from modelmux.config.schema import CorsConfig
from modelmux.errors import Headers

_METHODS = b"GET, POST, OPTIONS"
_EXPOSED = (b"x-request-id, retry-after, x-ratelimit-limit-requests, "
            b"x-ratelimit-remaining-requests, x-ratelimit-reset-requests, "
            b"x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens")
"""Answer headers a browser script may read: the request id, and a limited key's limits."""


class Cors:
    """Decides CORS headers for one configuration."""

    def __init__(self, config: CorsConfig) -> None:
        self.any_origin = "*" in config.allow_origins
        self.origins = {o.rstrip("/").lower() for o in config.allow_origins if o != "*"}
        self.header_patterns = [h.lower() for h in config.allow_headers]
        self.max_age = str(config.max_age).encode()

    @property
    def enabled(self) -> bool:
        return self.any_origin or bool(self.origins)

    def allows(self, origin: bytes) -> bool:
        return self.any_origin or origin.decode("latin-1").rstrip("/").lower() in self.origins

    def response_headers(self, origin: bytes) -> Headers:
        """Headers for an actual (non-preflight) cross-origin request."""
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-expose-headers", _EXPOSED),
            (b"vary", b"origin"),
        ]

    def preflight_headers(self, origin: bytes, requested: bytes | None) -> Headers:
        """Headers answering an OPTIONS preflight from an allowed origin."""
        allowed = []
        for name in (requested or b"").decode("latin-1").split(","):
            name = name.strip().lower()
            if name and any(fnmatchcase(name, pattern) for pattern in self.header_patterns):
                allowed.append(name)
        headers = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", _METHODS),
            (b"access-control-max-age", self.max_age),
            (b"vary", b"origin"),
        ]
        if allowed:
            headers.append((b"access-control-allow-headers", ", ".join(allowed).encode()))
        return headers
