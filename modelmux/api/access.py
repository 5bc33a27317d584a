"""Who may use the admin API and the dashboard, and how a browser session is kept safe.

Credentials: ``[admin] key`` (role admin) and ``[admin] viewer_key`` (role viewer: sees, changes
nothing), sent as ``Authorization: Bearer`` by scripts, or exchanged once at sign-in for a
session cookie (HttpOnly, SameSite=Strict) by the dashboard. A session is a signed value (role,
expiry, nonce), so every worker of a host accepts it; its key is derived from the configured
credentials, so changing a key ends the sessions it opened. A state-changing request that
rides on the cookie must carry the session's CSRF token (``X-CSRF-Token``) and an ``Origin``
equal to the gateway's own. With no credential configured and a loopback listener, anyone who
can connect is admin (sessions are then signed with a per-App random key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelmux.errors import AuthenticationFailed, NotFound, PermissionDenied, RateLimited

if TYPE_CHECKING:
    from modelmux.config.schema import Config
    from modelmux.server.exchange import Exchange

COOKIE = "mm_session"
SESSION_SECONDS = 12 * 3600
MAX_FAILURES = 10
"""Wrong keys one client address may try per minute (sign-in or bearer) before a 429."""
MAX_TRACKED = 10_000
RANK = {"viewer": 0, "admin": 1}
LOOPBACK = ("127.0.0.1", "::1", "localhost")
_BEARER_CHALLENGE = [(b"www-authenticate", b'Bearer realm="modelmux-admin"')]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Access:
    """The credentials of one App and the sessions signed with them."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time,
                 seed: bytes | None = None) -> None:
        """``seed`` signs keyless sessions (pass the previous App's, so a reload keeps them)."""
        admin = config.admin
        self.keys = {k.encode(): role for k, role in ((admin.key, "admin"),
                                                      (admin.viewer_key, "viewer")) if k}
        self.tenancy = config.auth.mode == "keys"  # API keys and JWTs may be admins too
        self.open = not self.keys and not self.tenancy and config.server.host in LOOPBACK
        self.tls = config.server.tls is not None
        self.clock = clock
        self.seed = seed or secrets.token_bytes(32)
        self._failures: dict[str, list[float]] = {}
        masters = sorted(self.keys) + ([config.auth.master_key.encode()]
                                       if self.tenancy and config.auth.master_key else [])
        material = b"\0".join(masters) if masters else self.seed
        self._secret = hashlib.sha256(b"modelmux-dashboard-session\0" + material).digest()

    @property
    def enabled(self) -> bool:
        """Whether the admin API and dashboard answer at all."""
        return bool(self.keys) or self.open or self.tenancy

    def throttle(self, client: str) -> None:
        """Refuse a client address that gave ``MAX_FAILURES`` wrong keys in the last minute.

        Raises:
            RateLimited: too many recent failures (with ``retry-after``).
        """
        address = client.rpartition(":")[0] or client
        if address not in self._failures:
            return
        recent = self._recent(client)
        if len(recent) >= MAX_FAILURES:
            wait = max(1, int(recent[0] + 60 - self.clock()) + 1)
            raise RateLimited("Too many wrong keys from this address; try again later.",
                              code="too_many_failures",
                              headers=[(b"retry-after", str(wait).encode())])

    def failed(self, client: str) -> None:
        """Count one wrong key from ``client`` (memory bounded: the oldest addresses go)."""
        self._recent(client).append(self.clock())

    def _recent(self, client: str) -> list[float]:
        """The address's failures of the last minute (kept only for addresses that failed)."""
        address = client.rpartition(":")[0] or client
        seen = self._failures.get(address)
        if seen is None:
            seen = []
            if len(self._failures) >= MAX_TRACKED:
                self._failures.pop(next(iter(self._failures)))
        cutoff = self.clock() - 60
        kept = self._failures[address] = [t for t in seen if t > cutoff]
        return kept

    def role_of_key(self, given: bytes) -> str | None:
        """The role of a credential (compared in constant time against each), or None."""
        found = None
        for key, role in self.keys.items():
            if hmac.compare_digest(given, key):
                found = role
        return found

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._secret, text.encode("ascii"), hashlib.sha256).digest())

    def issue(self, role: str) -> str:
        """A fresh session cookie value for ``role``."""
        body = f"{role}.{int(self.clock()) + SESSION_SECONDS}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._sign(body)}"

    def verify(self, value: str) -> str | None:
        """The role of a valid, unexpired session value, else None."""
        body, _, signature = value.rpartition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            return None
        role, expiry, _nonce = (body.split(".") + ["", ""])[:3]
        if role not in RANK or not expiry.isdigit() or int(expiry) < self.clock():
            return None
        return role

    def csrf(self, session: str) -> str:
        """The CSRF token bound to ``session`` (the page reads it from the session call)."""
        return self._sign(f"csrf:{session}")

    def set_cookie(self, value: str, max_age: int = SESSION_SECONDS) -> tuple[bytes, bytes]:
        secure = "; Secure" if self.tls else ""
        return (b"set-cookie", f"{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; "
                               f"SameSite=Strict{secure}".encode("ascii"))

    def origin(self, exchange: Exchange) -> str:
        """The origin a page served by this gateway has for this request's Host."""
        host = (exchange.header(b"host") or b"").decode("latin-1")
        return f"{'https' if self.tls else 'http'}://{host}"

    def check_origin(self, exchange: Exchange) -> None:
        """Refuse a request whose ``Origin`` is missing or another site's.

        Raises:
            PermissionDenied: the origin does not match.
        """
        given = (exchange.header(b"origin") or b"").decode("latin-1")
        if not given or given != self.origin(exchange):
            raise PermissionDenied("Cross-origin or origin-less request refused.",
                                   code="origin_mismatch")


def session_of(exchange: Exchange) -> str | None:
    """The session cookie's value, if the request carries one."""
    header = exchange.header(b"cookie")
    if not header:
        return None
    for part in header.decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


def require(access: Access, exchange: Exchange, role: str) -> str:
    """Let the request through with at least ``role``; returns the caller's role.

    A bearer credential is checked as is; a session cookie also needs, on anything but
    GET/HEAD, its CSRF token and a same-origin ``Origin``.

    Raises:
        NotFound: no credential is configured and the listener is not loopback (API off).
        AuthenticationFailed: no credential, or a session that is not (or no longer) valid.
        PermissionDenied: a wrong key, a missing CSRF token or origin, or too low a role.
    """
    given = exchange.header(b"authorization")
    if given is not None:
        if not access.keys:
            raise _off(exchange)
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            raise AuthenticationFailed("The admin API needs `Authorization: Bearer <admin key>`.",
                                       headers=_BEARER_CHALLENGE)
        access.throttle(exchange.client)
        found = access.role_of_key(token.strip())
        if found is None:
            access.failed(exchange.client)
            raise PermissionDenied("That is not an admin or viewer key.", code="invalid_admin_key")
    else:
        session = session_of(exchange)
        found = access.verify(session) if session else None
        if found is None:
            if not access.enabled:
                raise _off(exchange)
            raise AuthenticationFailed("The admin API needs `Authorization: Bearer <admin key>` "
                                       "or a dashboard session.", headers=_BEARER_CHALLENGE)
        assert session is not None
        if exchange.method not in ("GET", "HEAD"):
            access.check_origin(exchange)
            csrf = (exchange.header(b"x-csrf-token") or b"").decode("latin-1")
            if not hmac.compare_digest(csrf.encode(), access.csrf(session).encode()):
                raise PermissionDenied("Missing or wrong CSRF token.", code="csrf_failed")
    if RANK[found] < RANK[role]:
        raise PermissionDenied(f"This needs the {role} role; you are {found}.",
                               code="insufficient_role")
    return found


def _off(exchange: Exchange) -> NotFound:
    return NotFound(f"Invalid URL ({exchange.method} {exchange.path}): the admin API is off; "
                    "set [admin] key to turn it on.", code="unknown_url")
