"""The h11 backend of the HTTP/1.1 server: the reference implementation behind the fast one.

Wraps ``h11.Connection`` in the interface of ``modelmux.http1.server.ServerConnection`` so the
protocol runs unchanged on either (``[server] http1 = "h11"`` or
``MODELMUX_SERVER_HTTP1=h11``). h11's events become ``RequestHead``/``bytes``/``END`` and its
errors ``HTTP1ProtocolError``.
"""

from __future__ import annotations

import h11

from modelmux.http1.common import (
    END,
    NEED_DATA,
    PAUSED,
    STATUS_LINES,
    HTTP1LocalError,
    HTTP1ProtocolError,
    RequestHead,
)


def _reason(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    return line[13:-2] if line else b""


class H11Connection:
    """``ServerConnection``'s interface on top of h11."""

    def __init__(self, max_head: int = 65536) -> None:
        self.max_head = max_head
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)

    @property
    def trailing(self) -> bytes:
        return bytes(self.conn.trailing_data[0])

    @property
    def in_body(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY

    @property
    def request_complete(self) -> bool:
        return self.conn.their_state is h11.DONE

    @property
    def waiting_for_continue(self) -> bool:
        return self.conn.they_are_waiting_for_100_continue

    @property
    def response_started(self) -> bool:
        return self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE)

    def reusable(self) -> bool:
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE

    def receive_data(self, data: bytes) -> None:
        self.conn.receive_data(data)

    def start_next_cycle(self) -> None:
        try:
            self.conn.start_next_cycle()
        except h11.LocalProtocolError as exc:
            raise HTTP1LocalError(str(exc)) from None

    def next_event(self) -> object:
        """Raises: HTTP1ProtocolError for h11's RemoteProtocolError (with its status hint)."""
        try:
            event = self.conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise HTTP1ProtocolError(str(exc), exc.error_status_hint) from None
        kind = type(event)
        if kind is h11.Data:
            return bytes(event.data)  # type: ignore[union-attr]
        if kind is h11.EndOfMessage:
            return END
        if kind is h11.Request:
            return self._head(event)  # type: ignore[arg-type]
        if event is h11.PAUSED:
            return PAUSED
        return NEED_DATA  # NEED_DATA, or ConnectionClosed (the protocol never feeds EOF)

    def _head(self, event: h11.Request) -> RequestHead:
        headers = list(event.headers)
        length: int | None = None
        size = len(event.method) + len(event.target) + 12
        for name, value in headers:
            size += len(name) + len(value) + 4
            if name == b"content-length":
                length = int(value)
        if size > self.max_head:
            # h11 bounds only heads that arrive in pieces; a whole one is checked here.
            raise HTTP1ProtocolError(f"request head is larger than {self.max_head} bytes", 431)
        chunked = any(n == b"transfer-encoding" for n, _ in headers)
        conn = self.conn
        keep_alive = conn.their_state is not h11.MUST_CLOSE and _keeps_alive(event)
        return RequestHead(event.method, event.target, event.http_version, headers,
                           None if chunked else length, chunked, keep_alive,
                           conn.they_are_waiting_for_100_continue)

    def send_response(self, status: int, headers: list[tuple[bytes, bytes]], *, end: bool,
                      body: bytes = b"") -> bytes:
        """Raises: HTTP1LocalError for h11's LocalProtocolError."""
        try:
            out = self.conn.send(h11.Response(status_code=status, headers=headers,
                                              reason=_reason(status)))
            assert out is not None
            if end:
                if body:
                    out += self.conn.send(h11.Data(data=body))  # type: ignore[operator]
                out += self.conn.send(h11.EndOfMessage())  # type: ignore[operator]
        except h11.LocalProtocolError as exc:
            raise HTTP1LocalError(str(exc)) from None
        return out

    def send_data(self, data: bytes) -> bytes:
        return self.conn.send(h11.Data(data=data)) or b""

    def send_end(self) -> bytes:
        return self.conn.send(h11.EndOfMessage()) or b""

    def send_continue(self) -> bytes:
        if self.conn.they_are_waiting_for_100_continue:
            return self.conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
        return b""


def _keeps_alive(event: h11.Request) -> bool:
    if event.http_version < b"1.1":
        return False
    for name, value in event.headers:
        if name == b"connection" and b"close" in [t.strip() for t in value.lower().split(b",")]:
            return False
    return True
