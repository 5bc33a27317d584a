"""A second process for the SQLite fan-out test: opens the store at argv[1], prints
``ready``, then ``heard`` once a change to key argv[2] reaches it (``timeout`` after 10 s)."""

from __future__ import annotations

import asyncio
import sys

from modelmux.tenancy.sqlite import SqliteStore

WAIT = 10.0


async def main(path: str, key_id: str) -> None:
    store = SqliteStore(path)
    await store.open()
    heard = asyncio.Event()
    store.on_change(lambda kind, id: heard.set() if (kind, id) == ("key", key_id) else None)
    print("ready", flush=True)
    try:
        await asyncio.wait_for(heard.wait(), WAIT)
        print("heard", flush=True)
    except TimeoutError:
        print("timeout", flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
