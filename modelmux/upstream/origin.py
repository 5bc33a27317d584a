"""Where upstream connections go and what comes back first: ``Origin`` and ``ResponseHead``.

Shared by the dialer, both connection kinds and the pool, below all of them.
"""

from __future__ import annotations

from typing import NamedTuple

from modelmux.errors import Headers


class Origin(NamedTuple):
    """Where connections go: scheme ("http"/"https"), host, port. Pools key on it."""

    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def authority_bytes(self) -> bytes:
        """``authority`` as it goes on the wire (Host, :authority): IDNA for a non-ASCII name."""
        text = self.authority
        try:
            return text.encode("ascii")
        except UnicodeEncodeError:
            return text.encode("idna")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class ResponseHead(NamedTuple):
    status: int
    headers: Headers  # names lower-cased
    reason: str
