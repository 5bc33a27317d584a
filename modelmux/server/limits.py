"""Limits and timeouts of the inbound HTTP server, with the defaults users get.

Owned here so the config layer, the HTTP/1.1 protocol and the lifecycle code agree on names and
defaults. Values are plain numbers: bytes, counts and seconds.
"""

from __future__ import annotations

import msgspec


class ServerLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What one server process accepts before it refuses, times out or stops reading."""

    max_head_bytes: int = 64 * 1024
    """Request line plus headers; larger heads get 431."""
    max_body_bytes: int = 32 * 1024 * 1024
    """Request body; larger bodies get 413 without being read."""
    header_timeout: float = 10.0
    """Seconds to receive a complete request head once it has started; then 408 and close."""
    body_timeout: float = 60.0
    """Seconds the server waits between pieces of a request body the handler is waiting for."""
    keepalive_timeout: float = 30.0
    """Seconds an idle keep-alive connection stays open between requests."""
    max_connections: int = 10_000
    """Open client connections; more get 503 and are closed."""
    drain_timeout: float = 30.0
    """Seconds in-flight requests get to finish on shutdown before they are cut."""
    write_buffer_high: int = 256 * 1024
    """Bytes queued in the kernel-side transport before a writer waits (back-pressure)."""
