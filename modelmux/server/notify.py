"""systemd's readiness protocol (sd_notify): one datagram to ``$NOTIFY_SOCKET``, no library.

``READY=1`` once the server (or the supervisor, once its workers are) accepts; ``MAINPID=<pid>``
when ``modelmux upgrade`` hands the service to a new process, so systemd follows it
(``Type=notify`` in the packaged units). Without ``$NOTIFY_SOCKET`` every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("modelmux.notify")


def notify(message: str) -> bool:
    """Send ``message`` (``KEY=value`` lines) to the service manager; False when there is none."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address  # '@' is the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify the service manager at %s: %s", address, exc)
        return False
    return True
