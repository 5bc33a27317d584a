"""A small blocking client of a gateway's admin API and event stream, for ``modelmux tui``.

Authenticates with a bearer key (``MODELMUX_MASTER_KEY``, or ``--key``), or, against a
loopback gateway with no key configured, with the session that ``/dashboard/session`` opens
(then every change carries the session's CSRF token and the gateway's origin, as the browser
does). Blocking on purpose: the TUI runs it in worker threads. Only the standard library.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit


TIMEOUT = 30.0


def error_message(exc: urllib.error.HTTPError) -> str:
    """The ``error.message`` of an admin API error body, else the HTTP reason phrase."""
    try:
        return str(json.loads(exc.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(exc.reason)


class AdminError(Exception):
    """The gateway refused or could not be reached; the message says which and why."""


class AdminClient:
    """The admin API of the gateway at ``url``."""

    def __init__(self, url: str, key: str | None = None, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.key = key
        self.timeout = timeout
        self.cookie: str | None = None
        self.csrf: str | None = None
        self.role: str | None = "admin" if key else None
        self._stream: Any = None

    def _headers(self, post: bool = False) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if self.key:
            headers["authorization"] = f"Bearer {self.key}"
        elif self.cookie:
            headers["cookie"] = self.cookie
            if post and self.csrf:
                headers.update({"x-csrf-token": self.csrf, "origin": self.origin})
        if post:
            headers["content-type"] = "application/json"
        return headers

    def _open(self, path: str, body: Any = None, timeout: float | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data,
                                         headers=self._headers(post=data is not None),
                                         method="POST" if data is not None else "GET")
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{path}: HTTP {exc.code}: {error_message(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise AdminError(f"cannot reach {self.url}: {getattr(exc, 'reason', exc)}") from None

    def connect(self) -> str:
        """Check the credential (or open a session); returns the role.

        Raises:
            AdminError: no access.
        """
        if self.key:
            self.get("/admin/providers")
            return "admin"
        with self._open("/dashboard/session") as response:
            session = json.loads(response.read())
            cookie = response.headers.get("set-cookie") or ""
        if not session.get("role") or not cookie:
            raise AdminError("the gateway wants a key: set MODELMUX_MASTER_KEY (or --key)")
        self.cookie, self.csrf = cookie.split(";", 1)[0], session["csrf"]
        self.role = str(session["role"])
        return self.role

    def get(self, path: str) -> Any:
        with self._open(path) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        with self._open(path, body) as response:
            return json.loads(response.read())

    def snapshots(self) -> Iterator[dict[str, Any]]:
        """The event stream's snapshots as they come, until it ends or ``close``.

        Raises:
            AdminError: the stream cannot be opened.
        """
        parts = urlsplit(self.url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = self._stream = kind(parts.netloc, timeout=self.timeout)
        # Imported here: the CLI's parser imports this module, and loading a twin there would
        # pre-empt serve's own message for contradictory MODELMUX_* build switches.
        from modelmux.codec.sse import SSEDecoder

        decoder = SSEDecoder()
        try:
            conn.request("GET", parts.path + "/admin/events", headers=self._headers())
            response = conn.getresponse()
            if response.status != 200:
                raise AdminError(f"/admin/events: HTTP {response.status}")
            while line := response.readline():
                for event in decoder.feed(line):
                    if event.event == "snapshot":
                        yield json.loads(event.data)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if self._stream is not None:  # not ended by close()
                raise AdminError(f"event stream: {exc}") from None
        finally:
            self.close()

    def close(self) -> None:
        """End the event stream (from any thread): the blocked read returns at once."""
        conn, self._stream = self._stream, None
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
