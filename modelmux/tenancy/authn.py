"""``Authenticator``: from a request's credential to its ``Identity``, with the cache that keeps
a known key off the store and the throttle that keeps an address from guessing keys.

The master key is compared in constant time and is admin. A credential is first looked up in
memory (keyed by the credential itself, for ``key_cache_seconds``; all dropped whenever the
store reports a change), then by its hash in the store, with its user and team loaded; a
cached entry remembers which models its caller may use. A header value that carried a cached
credential is remembered too, so a repeated one is found without parsing (``fast``).
``last_used_at`` is gathered per request and written in batches by a background task, off the
request path. Tokens shaped like a JWT go to ``tenancy.jwt`` when ``[auth.jwt]`` is set.
Errors never carry the credential; logs name a key by its id or prefix.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from modelmux.errors import (
    AuthenticationFailed,
    Headers,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
)
from modelmux.tenancy.access import (
    FailureWindow,
    allows,
    client_host,
    credential_header,
    looks_like_jwt,
    model_names,
)
from modelmux.tenancy.keys import hash_key, well_formed
from modelmux.tenancy.records import Identity, Key

if TYPE_CHECKING:
    from modelmux.config.features import AuthConfig
    from modelmux.tenancy.fanout import RedisFanout
    from modelmux.tenancy.store import TenancyStore

log = logging.getLogger("modelmux.auth")

MASTER = Identity(kind="master", label="master", role="admin")
TOUCH_SECONDS = 5.0
"""How often ``last_used_at`` is written to the store."""

MAX_CACHED = 65_536
MAX_TOKENS = 4096
"""Verified JWTs remembered at most (all dropped when full)."""
_HINT = ("Pass an API key as `Authorization: Bearer <key>` or `x-api-key: <key>`; "
         "ask your ModelMux admin for one.")


class KeyEntry:
    """A cached identity, and the models it was found to be allowed (or not) to use.

    ``until`` is the sooner of ``expires`` and the key's own expiry; ``open`` says no list
    limits its models. ``plan`` is left to the admit stage (what it worked out for this
    identity), so it is worked out once per entry and dropped with it.
    """

    __slots__ = ("expires", "identity", "key_id", "models", "open", "plan", "until")

    def __init__(self, expires: float, identity: Identity) -> None:
        self.expires = expires
        self.identity = identity
        self.models: dict[str, bool] = {}
        key = identity.key
        self.key_id = key.id if key is not None else None
        self.until = (expires if key is None or key.expires_at is None
                      else min(expires, key.expires_at))
        self.open = identity.kind == "master" or all(
            limits.models is None for _, _, limits in identity.scopes())
        self.plan: Any = None


class Authenticator:
    """Who a request is (``identify``); built only when ``[auth] mode = "keys"``.

    ``on_failure(reason)`` is told of every refused credential ("missing", "unknown",
    "revoked", "expired", "jwt", "throttled") for metrics. ``clock`` is wall time in seconds.
    """

    def __init__(self, config: AuthConfig, store: TenancyStore, *,
                 admin_key: str | None = None, aliases: dict[str, str] | None = None,
                 on_failure: Callable[[str], None] | None = None,
                 fanout: RedisFanout | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.on_failure = on_failure
        self.fanout = fanout
        self._masters = tuple(k.encode() for k in (config.master_key, admin_key) if k)
        self._ttl = config.key_cache_seconds
        self.aliases = aliases or {}  # public model name -> its target, for model lists
        self._cache: dict[bytes, KeyEntry] = {}
        self._tokens: dict[bytes, KeyEntry] = {}  # verified JWTs
        self._bearers: dict[bytes, KeyEntry] = {}  # by the whole authorization header value
        self._api_keys: dict[bytes, KeyEntry] = {}  # by the whole x-api-key header value
        self._failures = FailureWindow(config.failed_auth_per_minute)
        self._touched: dict[str, float] = {}
        self._toucher: asyncio.Task[None] | None = None
        self._opened: asyncio.Task[None] | None = None
        self._jwt: Any = None
        store.on_change(self._changed)

    async def open(self) -> None:
        """Open the store (apply its migrations) once; later calls wait for the first, and
        a failed open is tried again by the next call.

        Raises:
            Exception: whatever the store's ``open`` raised.
        """
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._open())
        opened = self._opened
        try:
            await asyncio.shield(opened)
        except Exception:
            if opened.done() and self._opened is opened:
                self._opened = None
            raise

    async def _open(self) -> None:
        await self.store.open()
        if self.fanout is not None:
            await self.fanout.start()

    async def identify(self, headers: Headers, client: str, model: str | None = None
                       ) -> Identity:
        """The caller's identity; with ``model``, also checks the caller may use it.

        Raises:
            RateLimited: ``client`` failed too often this minute (429, ``retry-after``).
            AuthenticationFailed: no credential, or an unknown, revoked or expired one
                (401, ``invalid_api_key``).
            PermissionDenied: ``model`` is outside the key's, user's or team's list (403,
                ``model_not_allowed``).
        """
        found = credential_header(headers)
        now = self.clock()
        failures = self._failures
        if failures:
            wait = failures.blocked(client_host(client), now)
            if wait is not None:
                self._failed("throttled")
                raise RateLimited(
                    "Too many failed authentications from this address; try again later.",
                    code="too_many_failed_authentications",
                    headers=[(b"retry-after", b"%d" % max(1, int(wait + 0.999)))])
        if found is None:
            self._refuse(client, now, "missing", "No API key was provided. " + _HINT)
        token = found[2]
        entry = self._cache.get(token)
        if entry is None or entry.expires <= now:
            entry = await self._fresh(token, client, now)
        identity = self._let_in(entry, client, now, model)
        self._know(found, entry)
        return identity

    def fast(self, headers: Headers, model: str | None = None) -> KeyEntry | None:
        """The entry of a header value seen before, when nothing is left to decide: no
        address is being throttled, neither the entry nor its key has expired, and ``model``
        is known to be allowed. None in every other case, for ``identify`` to decide. Never
        raises and needs no coroutine: this is a cached key's whole check."""
        if self._failures.seen:
            return None
        for name, value in headers:
            if name == b"authorization":
                entry = self._bearers.get(value)
                break
            if name == b"x-api-key":
                entry = self._api_keys.get(value)
                break
        else:
            return None
        if entry is None:
            return None
        now = self.clock()
        if entry.until <= now or (model is not None and not entry.open
                                  and not entry.models.get(model)):
            return None
        key_id = entry.key_id
        if key_id is not None:
            self._touched[key_id] = now
        return entry

    def _know(self, found: tuple[bytes, bytes, bytes], entry: KeyEntry) -> None:
        """Remember the header value that carried a cached ``entry``'s credential."""
        if self._ttl <= 0:
            return
        known = self._bearers if found[0] == b"authorization" else self._api_keys
        if len(known) >= MAX_CACHED:
            known.clear()
        known[found[1]] = entry

    def cached(self, headers: Headers, client: str, model: str | None = None
               ) -> Identity | None:
        """``identify`` without a coroutine for a credential the cache holds; None when the
        full ``identify`` must decide (no credential, not cached, or some address throttled).

        Raises:
            AuthenticationFailed, PermissionDenied: as ``identify`` (expired key, model).
        """
        entry = self.fast(headers, model)
        if entry is not None:
            return entry.identity
        if self._failures.seen:
            return None
        found = credential_header(headers)
        if found is None:
            return None
        entry = self._cache.get(found[2])
        now = self.clock()
        if entry is None or entry.expires <= now:
            return None
        identity = self._let_in(entry, client, now, model)
        self._know(found, entry)
        return identity

    def _let_in(self, entry: KeyEntry, client: str, now: float, model: str | None) -> Identity:
        """The identity of a found ``entry``, if its key is unexpired and may use ``model``."""
        identity = entry.identity
        key = identity.key
        if key is not None:
            if key.expires_at is not None and key.expires_at <= now:
                self._refuse(client, now, "expired", "This API key has expired.")
            self._touched[key.id] = now
        if model is not None and identity.kind != "master":
            allowed = entry.models.get(model)
            if allowed is None:
                if len(entry.models) >= 1024:
                    entry.models.clear()
                allowed = entry.models[model] = allows(identity,
                                                       model_names(model, self.aliases))
            if not allowed:
                raise PermissionDenied(f"This API key may not use the model `{model}`.",
                                       param="model", code="model_not_allowed")
        return identity

    async def _fresh(self, token: bytes, client: str, now: float) -> KeyEntry:
        """The entry for a token the cache does not hold (cached, unless it is a JWT)."""
        identity: Identity | None = None
        for master in self._masters:
            if hmac.compare_digest(token, master):
                identity = MASTER
        if identity is None and self.config.jwt is not None and looks_like_jwt(token):
            return await self._jwt_entry(token, client, now)
        if identity is None:
            text = token.decode("latin-1")
            if not well_formed(text):  # a typo or a guess: no store lookup
                self._refuse(client, now, "unknown", "Incorrect API key provided. " + _HINT)
            identity = await self._lookup(hash_key(text), client, now)
        entry = KeyEntry(now + self._ttl, identity)
        if self._ttl > 0:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[token] = entry
        return entry

    async def _lookup(self, hashed: str, client: str, now: float) -> Identity:
        try:
            await self.open()
            key = await self.store.key_by_hash(hashed)
        except Exception as exc:  # noqa: BLE001  # sqlite3, asyncpg, OS: the store is down
            log.warning("cannot look up a key in the [auth] store: %s: %s",
                        type(exc).__name__, exc)
            raise ServiceUnavailable("The key store is unavailable; try again shortly.",
                                     code="auth_store_unavailable",
                                     headers=[(b"retry-after", b"1")]) from None
        if key is None or not hmac.compare_digest(key.hash, hashed):
            self._refuse(client, now, "unknown", "Incorrect API key provided. " + _HINT)
        if key.revoked_at is not None:
            log.info("refused revoked key %s (%s)", key.id, key.prefix)
            self._refuse(client, now, "revoked", "This API key has been revoked.")
        if key.expires_at is not None and key.expires_at <= now:
            log.info("refused expired key %s (%s)", key.id, key.prefix)
            self._refuse(client, now, "expired", "This API key has expired.")
        self._touched[key.id] = now
        self._start_toucher()
        try:
            return await self.identity_of(key)
        except Exception as exc:  # noqa: BLE001  # as above
            log.warning("cannot load key %s's user or team: %s: %s", key.id,
                        type(exc).__name__, exc)
            raise ServiceUnavailable("The key store is unavailable; try again shortly.",
                                     code="auth_store_unavailable",
                                     headers=[(b"retry-after", b"1")]) from None

    async def identity_of(self, key: Key) -> Identity:
        """``key``'s identity with its user and team loaded from the store."""
        user = await self.store.get_user(key.user_id) if key.user_id else None
        team_id = key.team_id or (user.team_id if user is not None else None)
        team = await self.store.get_team(team_id) if team_id else None
        return Identity(kind="key", label=key.prefix or key.id, role=key.role, key=key,
                        user=user, team=team)

    async def _jwt_entry(self, token: bytes, client: str, now: float) -> KeyEntry:
        """A verified JWT's entry, remembered (in ``_tokens``) until its ``exp`` and at most
        ``key_cache_seconds``, so a repeated token skips the signature check."""
        if self._jwt is None:  # loaded only when [auth.jwt] is set and a JWT arrives
            verifier = importlib.import_module("modelmux.tenancy.jwt").JwtVerifier
            self._jwt = verifier(self.config.jwt, lookup=self._stored)
        entry = self._tokens.get(token)
        if entry is not None and entry.expires > now:
            return entry
        try:
            identity, exp = await self._jwt.check(token.decode("ascii"))
        except AuthenticationFailed as exc:
            self._refuse(client, now, "jwt", exc.message)
        entry = KeyEntry(min(exp, now + self._ttl), identity)
        if entry.expires > now:
            if len(self._tokens) >= MAX_TOKENS:
                self._tokens.clear()
            self._tokens[token] = entry
        return entry

    async def _stored(self, identity: Identity) -> Identity:
        """A JWT caller with its stored user and team (by the claim's id or name), so their
        limits and models apply; claims naming no stored record keep the bare claim values."""
        user, team = identity.user, identity.team
        try:
            await self.open()
            found_user = await self.store.get_user(user.id) if user is not None else None
            team_ref = team.id if team is not None else (
                found_user.team_id if found_user is not None else None)
            found_team = await self.store.get_team(team_ref) if team_ref else None
        except Exception as exc:  # noqa: BLE001  # sqlite3, asyncpg, OS: the store is down
            log.warning("cannot look up a JWT caller's user or team: %s: %s",
                        type(exc).__name__, exc)
            raise ServiceUnavailable("The key store is unavailable; try again shortly.",
                                     code="auth_store_unavailable",
                                     headers=[(b"retry-after", b"1")]) from None
        if found_user is None and found_team is None:
            return identity
        return Identity(kind=identity.kind, label=identity.label, role=identity.role,
                        user=found_user or user, team=found_team or team)

    def _refuse(self, client: str, now: float, reason: str, message: str) -> NoReturn:
        self._failures.failed(client_host(client), now)
        self._failed(reason)
        raise AuthenticationFailed(message, headers=[(b"www-authenticate",
                                                       b'Bearer realm="modelmux"')])

    def _failed(self, reason: str) -> None:
        if self.on_failure is not None:
            self.on_failure(reason)

    def _changed(self, kind: str, ident: str) -> None:
        """A record changed somewhere: forget every cached identity (cheap, and safe)."""
        self._cache.clear()
        self._tokens.clear()
        self._bearers.clear()
        self._api_keys.clear()

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
        except Exception as exc:  # noqa: BLE001  # the store is down: a missed last_used_at is no error
            log.warning("could not record keys' last use: %s", exc)

    async def aclose(self) -> None:
        """Write pending ``last_used_at`` times and close the store."""
        if self._toucher is not None:
            self._toucher.cancel()
            await asyncio.gather(self._toucher, return_exceptions=True)
        opened = self._opened
        if opened is not None and opened.done() and not opened.cancelled() \
                and opened.exception() is None:
            await self.flush()
        if self.fanout is not None:
            await self.fanout.close()
        await self.store.close()
