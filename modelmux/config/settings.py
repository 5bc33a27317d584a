"""Settings types the lower layers take: server limits, HTTP/2 settings, upstream timeouts,
circuit-breaker policy.

Owned by config so that ``config.schema`` decodes into them without importing the server, the
upstream client or routing; those layers import these types from here. Values are plain data:
bytes, counts and seconds (``None``: no limit).
"""

from __future__ import annotations

from dataclasses import dataclass

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


class H2Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the server advertises in SETTINGS, and the per-second flood budgets."""

    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int = 65536
    max_resets_per_second: int = 200
    """Streams the client may reset per second before GOAWAY ENHANCE_YOUR_CALM (rapid reset)."""
    max_control_frames_per_second: int = 1000
    """PING and SETTINGS frames per second before GOAWAY ENHANCE_YOUR_CALM."""
    max_continuation_frames: int = 32
    """CONTINUATION frames in one header block before GOAWAY ENHANCE_YOUR_CALM."""


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


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When to open and for how long; ``error_rate`` applies once ``min_requests`` are seen."""

    consecutive_failures: int = 5
    error_rate: float = 0.5
    window: float = 60.0
    min_requests: int = 20
    cooldown: float = 30.0
    cooldown_multiplier: float = 2.0
    max_cooldown: float = 600.0
    half_open_probes: int = 1

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1 or self.min_requests < 1 or self.half_open_probes < 1:
            raise ValueError("consecutive_failures, min_requests and half_open_probes must be ≥ 1")
        if not (0.0 < self.error_rate <= 1.0):
            raise ValueError("error_rate must be in (0, 1]")
        if not (self.window > 0 and 0 <= self.cooldown <= self.max_cooldown
                and self.cooldown_multiplier >= 1.0):
            raise ValueError("need window > 0, 0 ≤ cooldown ≤ max_cooldown, multiplier ≥ 1")
