"""A fake server (``tests.fakes``: upstream, webhook, SMTP) on its own event-loop thread, for tests that drive a real
``modelmux serve`` process from synchronous code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Any)


@contextmanager
def threaded(fake: F) -> Iterator[F]:
    """``fake`` serving on a loop thread until the block ends."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(fake.__aenter__(), loop).result(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
