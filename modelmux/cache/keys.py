"""The cache key of a request, its namespace, and the request's cache directives. Pure.

The key covers what decides the answer: the door and the answer's form (JSON or a stream),
the resolved deployments (provider and upstream model of each, in a stable order) and every
top-level field of the request body except those that do not change the answer (``stream``
is the form; ``user``, ``metadata`` and ``store`` are labels). Request ids and tracing
headers are headers, so they never reach it. Values are hashed as the client sent them, so
the same request sent again gets the same key (top-level fields in any order; an object
nested inside a field with its keys reordered is another key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from modelmux.errors import InvalidRequest

if TYPE_CHECKING:
    from modelmux.tenancy.records import Identity

IGNORED = frozenset({"model", "stream", "user", "metadata", "store"})
"""Top-level request fields left out of the key (``model`` enters as its deployments)."""
TTL_HEADER = b"x-modelmux-cache-ttl"
CACHE_CONTROL = b"cache-control"

_top = msgspec.json.Decoder(dict[str, msgspec.Raw])
_pack = msgspec.msgpack.Encoder().encode
_sorted_json = msgspec.json.Encoder(order="sorted").encode


class Directives(NamedTuple):
    """What the request asks of the cache: skip the lookup, skip the store, a shorter TTL."""

    no_cache: bool = False
    no_store: bool = False
    ttl: float | None = None


NONE = Directives()


def directives(headers: Iterable[tuple[bytes, bytes]]) -> Directives:
    """``Cache-Control: no-cache`` / ``no-store`` and ``x-modelmux-cache-ttl`` (seconds > 0).

    Raises:
        InvalidRequest: an ``x-modelmux-cache-ttl`` that is not a positive number.
    """
    no_cache = no_store = False
    ttl = None
    for name, value in headers:
        if name == CACHE_CONTROL:
            for part in value.lower().split(b","):
                word = part.strip().partition(b"=")[0]
                no_cache = no_cache or word == b"no-cache"
                no_store = no_store or word == b"no-store"
        elif name == TTL_HEADER:
            ttl = _seconds(value)
    if not (no_cache or no_store or ttl is not None):
        return NONE
    return Directives(no_cache, no_store, ttl)


def _seconds(value: bytes) -> float:
    text = value.decode("latin-1").strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise InvalidRequest(
            f"Invalid value {text[:64]!r} for header {TTL_HEADER.decode()}; expected a number "
            "of seconds > 0.", param=TTL_HEADER.decode(), code="invalid_header_value")
    return seconds


def namespace(identity: Identity | None, scope: str) -> str:
    """Who shares hits: everyone without auth or with ``scope`` "global"; else the caller's
    team ("team"; a caller in no team gets its own key's space) or key ("key")."""
    if identity is None or scope == "global":
        return "global"
    key = identity.key
    if scope == "team":
        team = identity.team_id
        if team is not None:
            return "team:" + team
    if key is not None:
        return "key:" + key.id
    return f"{identity.kind}:{identity.label}"


def deployment_set(deployments: Iterable[tuple[str, str]]) -> bytes:
    """The (provider, upstream model) pairs a model resolves to, in a stable order, as bytes
    for ``request_key`` (worth keeping per model: it changes only with the config)."""
    return _pack(sorted(deployments))


def request_key(space: str, door: str, form: str, deployments: bytes, *bodies: bytes) -> str:
    """``space`` + a digest of everything that decides the answer; ``deployments`` is
    ``deployment_set``'s.

    Raises:
        msgspec.DecodeError, msgspec.ValidationError: a body is not a JSON object (the doors
            have decoded it already, so this does not happen for a served request).
    """
    digest = hashlib.blake2b(_pack((door, form, deployments)), digest_size=20)
    for body in bodies:
        fields = _top.decode(body)
        for name in IGNORED:
            fields.pop(name, None)
        digest.update(_sorted_json(fields))  # a JSON object: unambiguous, keys in order
    return space + ":" + digest.hexdigest()
