"""The two sans-I/O HTTP/1.1 client backends behind ``HTTP11Connection``, one interface.

``"fast"`` is ``ClientConnection`` from ``modelmux._speedups.http1_client`` (or its pure twin
``modelmux.http1._client_py``, chosen by ``modelmux._accel``); ``"h11"`` wraps h11, the
reference. Both frame a request with ``send_request`` and return ``(status, headers, reason)``,
body ``bytes``, ``END`` or ``NEED_DATA`` from ``next_event()``, 1xx heads skipped;
``receive_data(b"")`` is the peer's close.
"""

from __future__ import annotations

from typing import Literal, Protocol

import h11

from modelmux import _accel
from modelmux.errors import Headers
from modelmux.http1.common import END, NEED_DATA, HTTP1ProtocolError

Backend = Literal["fast", "h11"]


class ClientParser(Protocol):
    keep_alive: bool

    @property
    def in_body(self) -> bool: ...

    def send_request(self, method: bytes, target: bytes, headers: Headers,
                     body: bytes) -> bytes: ...

    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> object: ...

    def reusable(self) -> bool: ...

    def start_next_cycle(self) -> None: ...


class H11Client:
    """h11's client state machine behind the fast backend's interface (the reference)."""

    def __init__(self, max_head: int) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)
        self.keep_alive = True

    @property
    def in_body(self) -> bool:
        return self._h11.their_state is h11.SEND_BODY

    def send_request(self, method: bytes, target: bytes, headers: Headers, body: bytes) -> bytes:
        h = self._h11
        pieces: list[bytes] = []
        for event in (h11.Request(method=method, target=target, headers=headers),
                      h11.Data(data=body), h11.EndOfMessage()):
            pieces += h.send_with_data_passthrough(event) or ()
        return b"".join(pieces)

    def receive_data(self, data: bytes) -> None:
        self._h11.receive_data(data)

    def next_event(self) -> object:
        """Raises: h11.RemoteProtocolError, HTTP1ProtocolError (closed mid-response)."""
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                return NEED_DATA
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.Response):
                return event.status_code, list(event.headers), event.reason
            if isinstance(event, h11.EndOfMessage):
                return END
            if isinstance(event, h11.InformationalResponse):
                continue
            raise HTTP1ProtocolError(f"connection closed before the response was complete "
                                     f"({event!r})", 502)

    def reusable(self) -> bool:
        h = self._h11
        return (h.our_state is h11.DONE and h.their_state is h11.DONE
                and not h.trailing_data[0] and not h.trailing_data[1])

    def start_next_cycle(self) -> None:
        self._h11.start_next_cycle()


def client_parser(backend: Backend, max_head: int) -> ClientParser:
    """A new sans-I/O client connection of ``backend`` whose heads may be ``max_head`` bytes."""
    if backend == "h11":
        return H11Client(max_head)
    module = _accel.load("http1_client", "modelmux.http1._client_py")
    parser: ClientParser = module.ClientConnection(max_head)
    return parser
