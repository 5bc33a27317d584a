"""The ``[state]`` table: where per-deployment limits live (this process, or a shared Redis).

Schema only; see docs/configuration.md and docs/routing.md ("Shared limits").
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Struct

SCHEMES = ("redis", "rediss", "unix")


SECRET_PARAMS = re.compile(r"(^|&)((?:ssl)?password=)[^&]*", re.IGNORECASE)
"""libpq's query parameters that hold a secret: ``password`` and ``sslpassword`` (the
client key's passphrase)."""


def hide_password(url: str, mask: str = "<redacted>") -> str:
    """``url`` with its passwords (in the user part, or a ``password=`` or ``sslpassword=``
    query parameter) replaced by ``mask``, for ``config show`` and command output."""
    parts = urlsplit(url)
    if parts.password:
        user, _, host = parts.netloc.rpartition("@")
        name = user.partition(":")[0]
        parts = parts._replace(netloc=f"{name}:{mask}@{host}")
    if parts.query:
        parts = parts._replace(query=SECRET_PARAMS.sub(lambda m: m[1] + m[2] + mask, parts.query))
    return parts.geturl()


class StateConfig(Struct, forbid_unknown_fields=True, frozen=True):
    """``backend = "redis"`` shares rpm/tpm/max_concurrent across workers and hosts."""

    backend: Literal["memory", "redis"] = "memory"
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: Annotated[str, msgspec.Meta(max_length=200)] = "modelmux:"
    timeout_ms: Annotated[float, msgspec.Meta(gt=0, le=10_000)] = 250.0
    lease_ms: Annotated[int, msgspec.Meta(ge=100, le=3_600_000)] = 30_000
    retry_ms: Annotated[float, msgspec.Meta(ge=0, le=600_000)] = 1000.0
    share_breakers: bool = True
    breaker_sync_ms: Annotated[float, msgspec.Meta(ge=10, le=60_000)] = 500.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"url must start with redis://, rediss:// or unix://, "
                             f"got {self.url.split('://')[0]!r}")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("url has an invalid port") from None
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("url needs a host, e.g. redis://127.0.0.1:6379/0")

    def where(self) -> str:
        """The URL without credentials, for logs."""
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return f"unix://{parts.path}"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
