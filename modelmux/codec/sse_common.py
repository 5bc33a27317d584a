"""What both SSE twins share: the ``Event`` they return and the ``SSEProtocolError`` they raise.

Defined once here so that the native (``modelmux._speedups.sse``) and pure
(``modelmux.codec._sse_py``) twins hand out the very same classes. No parsing lives here.
"""

from __future__ import annotations

import msgspec

from modelmux.errors import UpstreamError


class Event(msgspec.Struct, frozen=True, gc=False):
    """One dispatched SSE event; ``data`` stays bytes so the hot path never decodes UTF-8.

    ``id`` is the stream's last event ID at dispatch (it persists across events, as the spec
    says), ``None`` while it is empty. ``retry`` is the ``retry:`` value given inside this event's
    block, if any.
    """

    event: str = "message"
    data: bytes = b""
    id: str | None = None
    retry: int | None = None


class SSEProtocolError(UpstreamError):
    """The upstream sent an event stream we refuse to parse (e.g. a line over the limit)."""

    status = 502
    code = "upstream_bad_event_stream"
