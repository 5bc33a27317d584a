"""In-process server harness: a real ``Server`` on a loopback port and raw-socket clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from modelmux.config.settings import ServerLimits
from modelmux.server.exchange import Handler
from modelmux.server.lifecycle import Server

DEADLINE = 10.0
HTTP1 = os.environ.get("MODELMUX_SERVER_HTTP1", "fast")
"""The HTTP/1.1 backend under test; CI runs tests/server and tests/e2e again with ``h11``."""


@contextlib.asynccontextmanager
async def running(handler: Handler, **limits: object) -> AsyncIterator[tuple[Server, int]]:
    server = Server(handler, ServerLimits(**limits), http1=HTTP1)  # type: ignore[arg-type]
    (_, port), *_ = await server.listen("127.0.0.1", 0)
    try:
        yield server, port
    finally:
        await server.shutdown()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), DEADLINE)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (Content-Length or chunked) from a raw stream."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if status == 100:
        return status, headers, b""
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), DEADLINE)
            size = int(size_line.split(b";")[0], 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), DEADLINE)
            if size == 0:
                break
            body += chunk[:-2]
    elif "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), DEADLINE)
    return status, headers, body


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed the connection (EOF or reset)."""
    try:
        return await asyncio.wait_for(reader.read(1), DEADLINE) == b""
    except ConnectionError:
        return True
