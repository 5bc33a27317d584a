"""``Authenticator``: from a request's credential to its ``Identity``, with the cache that keeps
a known key off the store and the throttle that keeps an address from guessing keys.

The master key is compared in constant time and is admin. A key is looked up by its hash:
first in memory (for ``key_cache_seconds``, dropped whenever the store reports a change), then
in the store, with its user and team loaded. ``last_used_at`` is gathered per request and
written in batches by a background task, off the request path. Tokens shaped like a JWT go to
``tenancy.jwt`` when ``[auth.jwt]`` is set. Errors never carry the credential; logs name a
key by its id or prefix.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelmux.errors import AuthenticationFailed, Headers, RateLimited
from modelmux.tenancy.access import FailureWindow, client_host, credential, looks_like_jwt
from modelmux.tenancy.keys import hash_key, well_formed
from modelmux.tenancy.records import Identity, Key

if TYPE_CHECKING:
    from modelmux.config.features import AuthConfig
    from modelmux.tenancy.store import TenancyStore

log = logging.getLogger("modelmux.auth")

MASTER = Identity(kind="master", label="master", role="admin")
TOUCH_SECONDS = 5.0
"""How often ``last_used_at`` is written to the store."""

_HINT = ("Pass an API key as `Authorization: Bearer <key>` or `x-api-key: <key>`; "
         "ask your ModelMux admin for one.")


class Authenticator:
    """Who a request is (``identify``); built only when ``[auth] mode = "keys"``.

    ``on_failure(reason)`` is told of every refused credential ("missing", "unknown",
    "revoked", "expired", "jwt", "throttled") for metrics. ``clock`` is wall time in seconds.
    """

    def __init__(self, config: AuthConfig, store: TenancyStore, *,
                 admin_key: str | None = None,
                 on_failure: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.on_failure = on_failure
        self._masters = tuple(k.encode() for k in (config.master_key, admin_key) if k)
        self._ttl = config.key_cache_seconds
        self._cache: dict[str, tuple[float, Identity]] = {}
        self._failures = FailureWindow(config.failed_auth_per_minute)
        self._touched: dict[str, float] = {}
        self._toucher: asyncio.Task[None] | None = None
        self._opened: asyncio.Task[None] | None = None
        self._jwt: Any = None
        store.on_change(self._changed)

    async def open(self) -> None:
        """Open the store (apply its migrations) once; later calls wait for the first."""
        if self._opened is None:
            self._opened = asyncio.ensure_future(self.store.open())
        await asyncio.shield(self._opened)

    async def identify(self, headers: Headers, client: str) -> Identity:
        """The caller's identity.

        Raises:
            RateLimited: ``client`` failed too often this minute (429, ``retry-after``).
            AuthenticationFailed: no credential, or an unknown, revoked or expired one
                (401, ``invalid_api_key``).
        """
        token = credential(headers)
        now = self.clock()
        host = client_host(client)
        wait = self._failures.blocked(host, now)
        if wait is not None:
            self._failed("throttled")
            raise RateLimited(
                "Too many failed authentications from this address; try again later.",
                code="too_many_failed_authentications",
                headers=[(b"retry-after", b"%d" % max(1, int(wait + 0.999)))])
        if token is None:
            self._refuse(host, now, "missing", "No API key was provided. " + _HINT)
        text = token.decode("latin-1")
        hashed = hash_key(text)
        cached = self._cache.get(hashed)
        if cached is not None and cached[0] > now:
            identity = cached[1]
            key = identity.key
            if key is not None:
                if key.expires_at is not None and key.expires_at <= now:
                    self._refuse(host, now, "expired", "This API key has expired.")
                self._touched[key.id] = now
            return identity
        for master in self._masters:
            if hmac.compare_digest(token, master):
                return MASTER
        if self._jwt_on() and looks_like_jwt(token):
            return await self._verify_jwt(token, host, now)
        if not well_formed(text):  # a typo or a guess: no store lookup
            self._refuse(host, now, "unknown", "Incorrect API key provided. " + _HINT)
        identity = await self._lookup(hashed, host, now)
        if self._ttl > 0:
            if len(self._cache) >= 65_536:
                self._cache.clear()
            self._cache[hashed] = (now + self._ttl, identity)
        return identity

    async def _lookup(self, hashed: str, host: str, now: float) -> Identity:
        await self.open()
        key = await self.store.key_by_hash(hashed)
        if key is None or not hmac.compare_digest(key.hash, hashed):
            self._refuse(host, now, "unknown", "Incorrect API key provided. " + _HINT)
        if key.revoked_at is not None:
            log.info("refused revoked key %s (%s)", key.id, key.prefix)
            self._refuse(host, now, "revoked", "This API key has been revoked.")
        if key.expires_at is not None and key.expires_at <= now:
            log.info("refused expired key %s (%s)", key.id, key.prefix)
            self._refuse(host, now, "expired", "This API key has expired.")
        self._touched[key.id] = now
        self._start_toucher()
        return await self.identity_of(key)

    async def identity_of(self, key: Key) -> Identity:
        """``key``'s identity with its user and team loaded from the store."""
        user = await self.store.get_user(key.user_id) if key.user_id else None
        team_id = key.team_id or (user.team_id if user is not None else None)
        team = await self.store.get_team(team_id) if team_id else None
        return Identity(kind="key", label=key.prefix or key.id, role=key.role, key=key,
                        user=user, team=team)

    def _jwt_on(self) -> bool:
        return self.config.jwt is not None

    async def _verify_jwt(self, token: bytes, host: str, now: float) -> Identity:
        if self._jwt is None:
            from modelmux.tenancy.jwt import JwtVerifier
            self._jwt = JwtVerifier(self.config.jwt)
        try:
            identity: Identity = await self._jwt.verify(token.decode("ascii"))
        except AuthenticationFailed as exc:
            self._refuse(host, now, "jwt", exc.message)
        return identity

    def _refuse(self, host: str, now: float, reason: str, message: str) -> Any:
        self._failures.failed(host, now)
        self._failed(reason)
        raise AuthenticationFailed(message, headers=[(b"www-authenticate",
                                                       b'Bearer realm="modelmux"')])

    def _failed(self, reason: str) -> None:
        if self.on_failure is not None:
            self.on_failure(reason)

    def _changed(self, kind: str, ident: str) -> None:
        """A record changed somewhere: forget every cached identity (cheap, and safe)."""
        self._cache.clear()

    def _start_toucher(self) -> None:
        if self._toucher is None or self._toucher.done():
            self._toucher = asyncio.get_running_loop().create_task(self._touch_loop())

    async def _touch_loop(self) -> None:
        while True:
            await asyncio.sleep(TOUCH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        """Write the gathered ``last_used_at`` times now."""
        if not self._touched:
            return
        touched, self._touched = self._touched, {}
        try:
            await self.store.touch_keys(touched)
        except Exception as exc:  # the store is down: a missed last_used_at is no error
            log.warning("could not record keys' last use: %s", exc)

    async def aclose(self) -> None:
        """Write pending ``last_used_at`` times and close the store."""
        if self._toucher is not None:
            self._toucher.cancel()
            await asyncio.gather(self._toucher, return_exceptions=True)
        if self._opened is not None and self._opened.done() and not self._opened.exception():
            await self.flush()
        await self.store.close()
