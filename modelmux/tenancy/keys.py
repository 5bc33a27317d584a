"""API keys and record ids: generation, hashing, recognition. Pure functions, no I/O.

A key is ``sk-mm-`` + 43 base62 characters (32 random bytes) + a 6-character base62 CRC-32
of those, so a typo is caught before any store lookup and secret scanners can recognise a
leaked key. Only ``hash_key(key)`` (hex SHA-256) and ``key_prefix(key)`` are ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib
from typing import Any, NamedTuple

from modelmux.tenancy.records import Key

KEY_TAG = "sk-mm-"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
SECRET_BYTES = 32
BODY_CHARS = 43
"""62**43 > 2**256: every 32-byte value fits in 43 base62 characters."""
CHECK_CHARS = 6
"""62**6 > 2**32: a CRC-32 fits in 6 base62 characters."""
KEY_LENGTH = len(KEY_TAG) + BODY_CHARS + CHECK_CHARS
PREFIX_LENGTH = 12
"""``sk-mm-`` and the first 6 characters of the body: enough to tell keys apart in a list."""
ID_CHARS = 12

_BASE62_SET = frozenset(BASE62)


def base62(number: int, width: int) -> str:
    """``number`` in base62, left-padded with ``0`` to ``width`` characters.

    Raises:
        ValueError: ``number`` is negative or needs more than ``width`` characters.
    """
    if number < 0:
        raise ValueError("base62 takes a non-negative number")
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(BASE62[digit])
    if len(digits) > width:
        raise ValueError(f"{len(digits)} base62 digits do not fit in {width}")
    return "".join(reversed(digits)).rjust(width, "0")


def _check(body: str) -> str:
    return base62(zlib.crc32(body.encode("ascii")), CHECK_CHARS)


class NewKey(NamedTuple):
    """A freshly generated key: ``secret`` is shown once; ``prefix`` and ``hash`` are stored."""

    secret: str
    prefix: str
    hash: str


def generate_key() -> NewKey:
    """A new random key with its prefix and hash (``secrets``: a CSPRNG)."""
    body = base62(int.from_bytes(secrets.token_bytes(SECRET_BYTES), "big"), BODY_CHARS)
    secret = KEY_TAG + body + _check(body)
    return NewKey(secret, key_prefix(secret), hash_key(secret))


def mint(**fields: Any) -> tuple[str, Key]:
    """A new key: the secret to show once, and the ``Key`` record to store (a fresh id,
    prefix and hash; ``fields`` are the rest: name, team_id, limits, ...)."""
    made = generate_key()
    return made.secret, Key(id=new_id("key"), prefix=made.prefix, hash=made.hash, **fields)


def well_formed(text: str) -> bool:
    """Whether ``text`` has a key's shape and checksum: cheap, and true before any lookup."""
    if len(text) != KEY_LENGTH or not text.startswith(KEY_TAG):
        return False
    rest = text[len(KEY_TAG):]
    if not _BASE62_SET.issuperset(rest):
        return False
    body, check = rest[:BODY_CHARS], rest[BODY_CHARS:]
    return hmac.compare_digest(_check(body), check)


def hash_key(secret: str) -> str:
    """The hex SHA-256 of a whole key: what stores keep and look keys up by."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def key_prefix(secret: str) -> str:
    """The first characters of a key, safe to show and log."""
    return secret[:PREFIX_LENGTH]


def same(a: str, b: str) -> bool:
    """Compare two secrets (or their hashes) in constant time, so timing reveals nothing."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def new_id(kind: str = "") -> str:
    """A short random record id, e.g. ``key_3kT9xQ0aB7cD``; ``kind`` names the record."""
    token = "".join(secrets.choice(BASE62) for _ in range(ID_CHARS))
    return f"{kind}_{token}" if kind else token
