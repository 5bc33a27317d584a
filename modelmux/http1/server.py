"""The HTTP/1.1 server backends: the fast twin pair (default) and the h11 reference.

``ServerConnection`` is the native twin when built, else ``modelmux.http1._server_py``
(``MODELMUX_PURE_PYTHON`` / ``MODELMUX_REQUIRE_NATIVE`` steer it, see ``_accel``).
``backend(name)`` returns the connection class for ``[server] http1`` (``fast`` or ``h11``; as
every setting, ``MODELMUX_SERVER_HTTP1`` sets it from the environment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from modelmux import _accel

__all__ = ["BACKENDS", "HTTP1Backend", "ServerConnection", "backend"]

BACKENDS = ("fast", "h11")

_impl = _accel.load("http1", "modelmux.http1._server_py")

if TYPE_CHECKING:  # both twins share one API; type checkers see it through the pure one
    from modelmux.http1._server_py import ServerConnection
else:
    ServerConnection = _impl.ServerConnection


class HTTP1Backend(Protocol):
    """What ``H1Protocol`` asks of an HTTP/1.1 backend (see ``_server_py.ServerConnection``)."""

    max_head: int

    @property
    def trailing(self) -> bytes: ...
    @property
    def in_body(self) -> bool: ...
    @property
    def request_complete(self) -> bool: ...
    @property
    def waiting_for_continue(self) -> bool: ...
    @property
    def response_started(self) -> bool: ...
    def reusable(self) -> bool: ...
    def receive_data(self, data: bytes) -> None: ...
    def start_next_cycle(self) -> None: ...
    def next_event(self) -> object: ...
    def send_response(self, status: int, headers: list[tuple[bytes, bytes]], *, end: bool,
                      body: bytes = b"") -> bytes: ...
    def send_data(self, data: bytes) -> bytes: ...
    def send_end(self) -> bytes: ...
    def send_continue(self) -> bytes: ...


def backend(name: str = "fast") -> type[HTTP1Backend]:
    """The connection class of the HTTP/1.1 backend ``name``.

    Raises:
        ValueError: the name is neither ``fast`` nor ``h11``.
    """
    if name == "h11":
        from modelmux.http1.server_h11 import H11Connection

        return H11Connection
    if name != "fast":
        raise ValueError(f"unknown HTTP/1.1 backend {name!r} (expected 'fast' or 'h11')")
    return ServerConnection  # type: ignore[return-value]
