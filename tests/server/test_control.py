"""The control socket's claim on its path: a live socket is kept, a stale one replaced."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from modelmux.server.control import ControlServer, send


async def pong(arg: str) -> tuple[bool, str]:
    return True, "pong"


def test_live_socket_is_kept_and_a_closing_server_removes_only_its_own(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    async def main() -> None:
        first, second = ControlServer(path, {"ping": pong}), ControlServer(path, {"ping": pong})
        await first.start()
        with pytest.raises(OSError) as refused:
            await second.start()
        assert refused.value.errno == errno.EADDRINUSE and not second.listening
        assert await asyncio.to_thread(send, path, "ping", 10.0) == (True, "pong")
        path.unlink()  # someone removed it, and another server bound the path since
        await second.start()
        await first.close()
        assert await asyncio.to_thread(send, path, "ping", 10.0) == (True, "pong")
        await second.close()
        assert not path.exists()

    asyncio.run(main())
