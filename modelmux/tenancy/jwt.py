"""Bearer JWTs from an identity provider: signature, issuer, audience and times checked, claims
mapped to the caller's user, team and role (``[auth.jwt]``).

Signatures are checked by PyJWT (``modelmux[jwt]``) with public keys only: RS*, PS* and ES*
algorithms from the configured allow-list; "none" and the HS* family are refused at build.
Keys come from a JWKS document (``jwks_file``, or ``jwks_url`` fetched with the gateway's own
HTTP client: a pool passed in, else one opened and closed per fetch), kept in memory,
refreshed in the background every ``jwks_refresh_seconds`` and at once when a token names an
unknown ``kid``; such refetches are at most one per ``REFETCH_SECONDS``, so unknown kids
cannot force a fetch storm. A failed fetch keeps the keys held. Errors never hold the token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import msgspec

from modelmux.config.features import JwtConfig
from modelmux.config.problems import ConfigError
from modelmux.config.validate import jwt_problem
from modelmux.errors import AuthenticationFailed, ModelMuxError
from modelmux.tenancy.records import ROLES, Identity, Team, User
from modelmux.upstream import ConnectionPool, Timeouts

log = logging.getLogger("modelmux.tenancy")

_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_PRIVILEGE = ("admin", "team_admin", "user", "viewer")  # most privileged first
REFETCH_SECONDS = 10.0
"""Least time between two JWKS fetches caused by unknown kids."""
MAX_TOKEN = 16 * 1024
_MAX_JWKS = 1024 * 1024
_TIMEOUTS = Timeouts(connect=5.0, first_byte=10.0, read=10.0, pool=5.0)

IdentityLookup = Callable[[Identity], Awaitable[Identity]]
"""Given the identity built from the claims, the same with stored user and team records
(their limits and models) attached; it may raise ``AuthenticationFailed``."""


class _Key:
    """A public key from the JWKS document, with the JWK fields that bind it to algorithms."""

    __slots__ = ("alg", "crv", "key", "kty", "use")

    def __init__(self, key: Any, data: dict[str, Any]) -> None:
        self.key = key
        self.kty, self.crv = data.get("kty"), data.get("crv")
        self.alg, self.use = data.get("alg"), data.get("use", "sig")

    def fits(self, alg: str) -> bool:
        """Whether a token signed with ``alg`` may be checked with this key: its family (and
        curve) matches, and a key that names its ``alg`` or ``use`` names this one and "sig"."""
        family = self.kty == "RSA" if alg[0] in "RP" else (
            self.kty == "EC" and self.crv == _CURVES.get(alg))
        return family and self.alg in (None, alg) and self.use == "sig"


class _Document(msgspec.Struct):
    keys: list[Any]


def _refused(why: str) -> AuthenticationFailed:
    return AuthenticationFailed(f"The bearer token was refused: {why}.")


class JwtVerifier:
    """Verifies bearer JWTs against one issuer's keys; one per App.

    ``clock`` (monotonic seconds) paces the key refreshes only; token times are checked
    against the wall clock by PyJWT.
    """

    def __init__(self, config: JwtConfig, *, pool: ConnectionPool | None = None,
                 lookup: IdentityLookup | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Raises:
            ConfigError: PyJWT is missing, no (or both) key sources, or ``algorithms`` lists
                one that is not a public-key one.
        """
        try:
            import jwt
        except ImportError:
            raise ConfigError("[auth.jwt] needs PyJWT: pip install 'modelmux[jwt]'") from None
        problem = jwt_problem(config.jwks_url, config.jwks_file, config.algorithms)
        if problem is not None:
            raise ConfigError(f"[auth.jwt] {problem[0]}")
        self._jwt = jwt
        self.config = config
        self.algorithms = frozenset(config.algorithms)
        self.lookup = lookup
        self.clock = clock
        self.fetches = 0
        self.pool = pool  # None: each fetch opens a pool of its own and closes it
        self._keys: dict[str, _Key] = {}  # by kid ("" when the document names none)
        self._fetched_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None

    async def verify(self, token: str) -> Identity:
        """The identity a valid token stands for.

        Raises:
            AuthenticationFailed: see ``check``.
        """
        return (await self.check(token))[0]

    async def check(self, token: str) -> tuple[Identity, float]:
        """The identity a valid token stands for, and its ``exp`` (Unix seconds).

        Raises:
            AuthenticationFailed: malformed, badly signed, expired or not yet valid, wrong
                issuer or audience, unknown signing key, or a role claim naming no known role.
        """
        jwt = self._jwt
        if not token or len(token) > MAX_TOKEN:
            raise _refused("not a JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused("not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise _refused(f"its algorithm is not one of {', '.join(sorted(self.algorithms))}")
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else "")
        if not key.fits(alg):
            raise _refused("its signing key does not match its algorithm")
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[alg], audience=self.config.audience,
                issuer=self.config.issuer, leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise _refused("it has expired") from None
        except jwt.ImmatureSignatureError:
            raise _refused("it is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidIssuerError:
            raise _refused("wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise _refused("wrong audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _refused(f"it has no {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise _refused("bad signature") from None
        except jwt.PyJWTError:
            raise _refused("not a valid JWT") from None
        identity = self.identity(claims)
        if self.lookup is not None:
            identity = await self.lookup(identity)
        exp = claims["exp"]
        return identity, float(exp) if isinstance(exp, int | float) else 0.0

    def identity(self, claims: dict[str, Any]) -> Identity:
        """The identity the (verified) ``claims`` name.

        Raises:
            AuthenticationFailed: no user claim, or a role claim naming no known role.
        """
        config = self.config
        user_id = claims.get(config.user_claim)
        if not isinstance(user_id, str) or not user_id:
            raise _refused(f"it has no {config.user_claim!r} claim")
        team_id = claims.get(config.team_claim)
        team = Team(id=team_id, name=team_id) if isinstance(team_id, str) and team_id else None
        role = role_of(claims.get(config.role_claim))
        if role is None:
            raise _refused(f"its {config.role_claim!r} claim names none of {', '.join(ROLES)}")
        name = claims.get("name")
        user = User(id=user_id, name=name if isinstance(name, str) and name else user_id,
                    team_id=team.id if team is not None else None, role=role)
        subject = claims.get("sub")
        label = subject if isinstance(subject, str) and subject else user_id
        return Identity(kind="jwt", label=label[:200], role=role, user=user, team=team)

    async def _key(self, kid: str) -> _Key:
        now = self.clock()
        if self._fetched_at is None or (kid not in self._keys
                                        and now - self._fetched_at >= REFETCH_SECONDS):
            await self._refresh()
        elif (now - self._fetched_at >= self.config.jwks_refresh_seconds
              and self._inflight is None):
            self._start()  # in the background; this request uses the keys held
        key = self._keys.get(kid)
        if key is None and not kid and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None:
            raise _refused("its signing key (kid) is not among the issuer's keys")
        return key

    async def _refresh(self) -> None:
        task = self._inflight or self._start()
        with suppress(Exception):  # logged once by _settled; the keys held stay
            await asyncio.shield(task)

    def _start(self) -> asyncio.Task[None]:
        self._fetched_at = self.clock()  # paces refetches even when this one fails
        task = self._inflight = asyncio.get_running_loop().create_task(self._fetch())
        task.add_done_callback(self._settled)
        return task

    def _settled(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("[auth.jwt] keys from %s not refreshed (keeping %d held): %s",
                        self._source(), len(self._keys), exc)

    def _source(self) -> str:
        return self.config.jwks_url or str(self.config.jwks_file)

    async def _fetch(self) -> None:
        """Replace the keys with the JWKS document's (when it holds at least one usable)."""
        if self.config.jwks_file is not None:
            document = await asyncio.to_thread(Path(self.config.jwks_file).read_bytes)
        else:
            document = await self._download()
        self.fetches += 1
        self._keys = self.parse(document)

    async def _download(self) -> bytes:
        assert self.config.jwks_url is not None
        pool = self.pool or ConnectionPool(max_connections_per_origin=1)
        try:
            response = await pool.request(
                b"GET", self.config.jwks_url, [(b"accept", b"application/json")], b"", _TIMEOUTS)
            async with response:
                status, body = response.status, await response.read(_MAX_JWKS)
        except ModelMuxError as exc:
            raise OSError(f"cannot fetch: {exc.message}") from None
        finally:
            if pool is not self.pool:
                await pool.aclose()
        if status != 200:
            raise OSError(f"HTTP {status}")
        return body

    def parse(self, document: bytes) -> dict[str, _Key]:
        """The usable keys of a JWKS document, by kid.

        Raises:
            ValueError: not a JWKS document, or no key in it can be used.
        """
        try:
            keys = msgspec.json.decode(document, type=_Document).keys
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise ValueError("not a JWKS document (a JSON object with a \"keys\" list)") from None
        found: dict[str, _Key] = {}
        for data in keys:
            if not isinstance(data, dict) or data.get("kty") not in ("RSA", "EC"):
                continue
            if "d" in data:
                log.warning("[auth.jwt] %s holds a private key; it is ignored", self._source())
                continue
            with suppress(self._jwt.PyJWTError, ValueError, TypeError, KeyError):
                kid = data.get("kid")
                found[kid if isinstance(kid, str) else ""] = _Key(self._jwt.PyJWK(data).key, data)
        if not found:
            raise ValueError("no usable RSA or EC public key in it")
        return found

    async def aclose(self) -> None:
        """Stop a fetch in progress (the pool, when one was given, is its owner's to close)."""
        task = self._inflight
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task


def role_of(claim: object) -> str | None:
    """The role a role claim (a string or a list of them) maps to: the most privileged of the
    ``ROLES`` it names; "user" when absent or empty; None when it names only unknown roles."""
    if claim is None:
        return "user"
    values = [claim] if isinstance(claim, str) else claim if isinstance(claim, list) else None
    if values is None:
        return None
    if not values:
        return "user"
    for role in _PRIVILEGE:
        if role in values:
            return role
    return None
