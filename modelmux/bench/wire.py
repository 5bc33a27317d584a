"""Sans-I/O HTTP/1.1 for the load generator: pre-encoded requests and a minimal response parser.

The parser frames a response (Content-Length, chunked, or read-until-close), reads the status
and the few headers that matter, and for ``text/event-stream`` bodies counts SSE ``data:`` lines
and notices ``data: [DONE]``. It validates only what framing needs: it is a meter, not h11.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import msgspec

WORDS = b"The quick brown fox jumps over the lazy dog. "
_DATA = b"\ndata:"
_DONE = (b"data: [DONE]", b"data:[DONE]")
_TAIL = 11  # longest pattern minus one: a match split across reads is seen once

HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, UNTIL_CLOSE, COMPLETE = range(8)


def _header(lower_head: bytes, needle: bytes) -> bytes | None:
    """The stripped value after ``needle`` (CRLF, lower-case name, colon) in a head, or None."""
    at = lower_head.find(needle)
    if at < 0:
        return None
    start = at + len(needle)
    end = lower_head.find(b"\r\n", start)
    return lower_head[start:end if end >= 0 else len(lower_head)].strip()


class WireError(Exception):
    """The response cannot be framed (malformed head, chunk size, or EOF mid-message)."""


class Target(msgspec.Struct, frozen=True):
    """Where requests go: scheme, host, port and the path of the chat completions endpoint."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_url(url: str) -> Target:
    """``http(s)://host[:port][/path]``; an empty path means ``/v1/chat/completions``.

    A path not ending in ``/chat/completions`` gets it appended (``http://h:8000/v1`` works).

    Raises:
        ValueError: not an http(s) URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1/chat/completions"
    elif not path.endswith("/chat/completions"):
        path += "/chat/completions"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path)


def prompt(size: int) -> str:
    """An English-looking prompt of exactly ``size`` ASCII bytes."""
    text = WORDS * (size // len(WORDS) + 1)
    return text[:size].decode()


def chat_body(model: str, payload_bytes: int, stream: bool) -> bytes:
    """A chat completions request body with a user message of ``payload_bytes`` bytes."""
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt(payload_bytes)}],
    }
    if stream:
        body["stream"] = True
    return msgspec.json.encode(body)


def encode_request(target: Target, body: bytes, headers: Sequence[tuple[str, str]] = (),
                   stream: bool = False) -> bytes:
    """The whole ``POST`` request as bytes, built once and written for every request."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"Host: {host}" + ("" if target.port == default else f":{target.port}"),
        "Content-Type: application/json",
        "Accept: " + ("text/event-stream" if stream else "application/json"),
        "User-Agent: modelmux-bench",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ResponseParser:
    """One response: ``feed`` bytes until ``complete``; ``eof`` when the peer closes.

    ``feed`` returns how many SSE ``data:`` lines began in the piece (0 for non-SSE bodies).
    """

    __slots__ = ("_buf", "_left", "_tail", "_tail_hits", "body_bytes", "done", "events",
                 "keep_alive", "sse", "state", "status")

    def __init__(self) -> None:
        self.state = HEAD
        self.status = 0
        self.keep_alive = True
        self.sse = False
        self.events = 0
        self.done = False
        self.body_bytes = 0
        self._buf = b""
        self._left = 0
        self._tail = b"\n"  # the body starts on a fresh line
        self._tail_hits = 0

    @property
    def complete(self) -> bool:
        return self.state == COMPLETE

    @property
    def head_done(self) -> bool:
        return self.state != HEAD

    def feed(self, data: bytes) -> int:
        """Consume ``data``; returns the number of SSE events that began in it.

        Raises:
            WireError: the bytes cannot be a valid response, or arrive after it completed.
        """
        before = self.events
        if self._buf:
            data = self._buf + data
            self._buf = b""
        pos = 0
        end = len(data)
        while pos < end:
            state = self.state
            if state == CHUNK_DATA or state == LENGTH:
                take = min(self._left, end - pos)
                self._body(data[pos:pos + take])
                pos += take
                self._left -= take
                if self._left == 0:
                    self.state = COMPLETE if state == LENGTH else CHUNK_END
            elif state == UNTIL_CLOSE:
                self._body(data[pos:])
                pos = end
            elif state == COMPLETE:
                raise WireError("bytes after the end of the response")
            else:
                pos = self._line_state(data, pos)
        return self.events - before

    def eof(self) -> None:
        """The peer closed: completes a read-until-close body.

        Raises:
            WireError: the response was not complete.
        """
        if self.state == UNTIL_CLOSE:
            self.state = COMPLETE
            self.keep_alive = False
        elif self.state != COMPLETE:
            raise WireError("connection closed before the response was complete")

    def _line_state(self, data: bytes, pos: int) -> int:
        """Head, chunk-size, chunk-end and trailer states: find the delimiter or buffer the rest."""
        if self.state == HEAD:
            cut = data.find(b"\r\n\r\n", pos)
            if cut < 0:
                self._keep(data[pos:], 65536)
                return len(data)
            self._head(data[pos:cut])
            return cut + 4
        cut = data.find(b"\r\n", pos)
        if cut < 0:
            self._keep(data[pos:], 4096)
            return len(data)
        line = data[pos:cut]
        if self.state == CHUNK_SIZE:
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise WireError(f"bad chunk size {line[:40]!r}") from None
            if size < 0:
                raise WireError("negative chunk size")
            self._left = size
            self.state = CHUNK_DATA if size else TRAILERS
        elif self.state == CHUNK_END:
            if line:
                raise WireError("chunk data longer than its size")
            self.state = CHUNK_SIZE
        elif not line:  # TRAILERS: an empty line ends the message
            self.state = COMPLETE
        return cut + 2

    def _keep(self, buf: bytes, limit: int) -> None:
        if len(buf) > limit:
            raise WireError("header or chunk line too long")
        self._buf = buf

    def _head(self, head: bytes) -> None:
        line_end = head.find(b"\r\n")
        first = head if line_end < 0 else head[:line_end]
        status = first.split(b" ", 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].isdigit():
            raise WireError(f"bad status line {first[:80]!r}")
        self.status = int(status[1])
        if 100 <= self.status < 200:  # interim response: the real one follows
            return
        lower = head.lower()
        length = _header(lower, b"\r\ncontent-length:")
        encoding = _header(lower, b"\r\ntransfer-encoding:")
        connection = _header(lower, b"\r\nconnection:")
        self.sse = (_header(lower, b"\r\ncontent-type:") or b"").startswith(b"text/event-stream")
        self.keep_alive = status[0] != b"HTTP/1.0"
        if connection is not None:
            self.keep_alive = connection != b"close" and (self.keep_alive or connection == b"keep-alive")
        if self.status in (204, 304):
            self.state = COMPLETE
        elif encoding is not None and encoding.endswith(b"chunked"):
            self.state = CHUNK_SIZE
        elif length is not None:
            if not length.isdigit():
                raise WireError(f"bad content-length {length[:40]!r}")
            self._left = int(length)
            self.state = LENGTH if self._left else COMPLETE
        else:
            self.state = UNTIL_CLOSE
            self.keep_alive = False

    def _body(self, piece: bytes) -> None:
        self.body_bytes += len(piece)
        if not self.sse or not piece:
            return
        window = self._tail + piece
        self.events += window.count(_DATA) - self._tail_hits
        if not self.done and (_DONE[0] in window or _DONE[1] in window):
            self.done = True
        self._tail = window[-_TAIL:]
        self._tail_hits = self._tail.count(_DATA)
