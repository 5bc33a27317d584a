"""Per-request timeouts of the upstream client, one per phase of an exchange.

Plain data: the pool and connections read it; config decodes into it. ``None`` means no limit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed for each phase of one upstream request.

    ``connect`` covers DNS, TCP and the TLS handshake; ``first_byte`` runs from the first byte
    of the request being written until the response head has arrived (so it also bounds a
    peer that will not read the request); ``read`` is the longest silence between body bytes;
    ``pool`` is how long a request may queue for a free connection to its origin.
    """

    connect: float | None = 10.0
    first_byte: float | None = 60.0
    read: float | None = 300.0
    pool: float | None = 30.0
