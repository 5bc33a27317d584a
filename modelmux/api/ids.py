"""Fresh identifiers for requests (``x-request-id``) and completions (``chatcmpl-…``).

128 random bits as 32 hex digits, the size of a uuid4. ``uuid.uuid4`` asks the kernel for
randomness on every call; these ids must be unique, not secret, so the ``random`` module's
generator (seeded from the kernel at start-up, re-seeded in a forked child) does, at about a
sixth of the cost per id.
"""

from __future__ import annotations

from random import getrandbits

__all__ = ["new_hex_id"]


def new_hex_id() -> str:
    """32 lower-case hex digits, random."""
    return getrandbits(128).to_bytes(16, "big").hex()  # cheaper than format(n, "032x")
