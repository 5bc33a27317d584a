"""Pure decisions about a caller: where its credential is, whether a token looks like a JWT,
whether a model is in its lists, and how many failed attempts an address has left.

No I/O and no clock of its own (times are passed in), so each rule is tested alone.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable

from modelmux.errors import Headers
from modelmux.tenancy.records import Identity, Limited

_JWT = re.compile(rb"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")

ADMIN_ROLES = frozenset({"admin"})
METRICS_ROLES = frozenset({"admin", "viewer"})


def credential(headers: Headers) -> bytes | None:
    """The client's credential: ``Authorization: Bearer <token>`` or ``x-api-key``, else None."""
    found = credential_header(headers)
    return found[2] if found is not None else None


def credential_header(headers: Headers) -> tuple[bytes, bytes, bytes] | None:
    """``credential`` with the header it came from: (name, raw value, credential)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            token = token.strip()
            if scheme.lower() == b"bearer" and token:
                return name, value, token
        elif name == b"x-api-key":
            token = value.strip()
            if token:
                return name, value, token
    return None


def looks_like_jwt(token: bytes) -> bool:
    """True for three base64url segments separated by dots (a compact JWS)."""
    return token.count(b".") == 2 and _JWT.match(token) is not None


def client_host(client: str) -> str:
    """The address part of ``host:port`` as the server records a peer (IPv6 included)."""
    host, sep, port = client.rpartition(":")
    return host if sep and port.isdigit() else client


@functools.lru_cache(maxsize=4096)
def _matches(model: str, patterns: tuple[str, ...]) -> bool:
    return any(model == p or fnmatch.fnmatchcase(model, p) for p in patterns)


def level_allows(limits: Limited, names: Iterable[str]) -> bool:
    """True when ``limits.models`` is unset or one of ``names`` (the model asked for and
    what its alias resolves to) matches one of its names or globs."""
    patterns = limits.models
    if patterns is None:
        return True
    return any(_matches(name, patterns) for name in names)


def model_names(model: str, aliases: dict[str, str]) -> tuple[str, ...]:
    """The names a model list may match: the name asked for and its alias's target."""
    target = aliases.get(model)
    return (model,) if target is None or target == model else (model, target)


def allows(identity: Identity, names: Iterable[str]) -> bool:
    """True when the key's, the user's and the team's model lists all admit the model."""
    names = tuple(names)
    return all(level_allows(limits, names) for _, _, limits in identity.scopes())


class FailureWindow:
    """Failed authentications per client address in fixed one-minute windows.

    ``blocked`` is asked before a credential is checked, so an address over its budget cannot
    keep guessing. Memory is bounded: past ``max_addresses`` the oldest windows are dropped.
    """

    __slots__ = ("_seen", "max_addresses", "per_minute", "seen")

    def __init__(self, per_minute: int, max_addresses: int = 65_536) -> None:
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self._seen: dict[str, tuple[float, int]] = {}
        self.seen = self._seen
        """Read-only: each address with failures counted, its (window start, count)."""

    def __len__(self) -> int:
        """Addresses with failures counted (none: nothing to check)."""
        return len(self._seen)

    def blocked(self, host: str, now: float) -> float | None:
        """Seconds until ``host`` may try again, or None when it may try now."""
        seen = self._seen.get(host)
        if seen is None:
            return None
        start, count = seen
        if now - start >= 60.0:
            del self._seen[host]
            return None
        return 60.0 - (now - start) if count >= self.per_minute else None

    def failed(self, host: str, now: float) -> None:
        """Count one failed authentication from ``host``."""
        seen = self._seen.get(host)
        if seen is None or now - seen[0] >= 60.0:
            self._seen.pop(host, None)
            if len(self._seen) >= self.max_addresses:
                for stale in list(self._seen)[: max(1, self.max_addresses // 8)]:
                    del self._seen[stale]
            self._seen[host] = (now, 1)
        else:
            self._seen[host] = (seen[0], seen[1] + 1)
