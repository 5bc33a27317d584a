"""``RedisFanout``: change notices between instances over Redis pub/sub, for any store.

Built when ``[state] backend = "redis"``. Each write this process commits is published on
``<key_prefix>tenancy`` as ``"<instance>|kind:id"``; every other instance subscribed there
hands it to its store's subscribers (``TenancyStore.notice``), so a revoked key stops working
on every instance as soon as the message arrives, with no polling. This is what lets several
SQLite instances on one host (and any instances sharing Redis) hear each other; PostgreSQL's
own LISTEN/NOTIFY keeps working beside it. A message from this instance is skipped (its
subscribers were told when the write returned). When the subscription is lost it is opened
again (tried every ``retry_seconds``), and once back, subscribers get ``("*", "")``, since
messages sent meanwhile are gone. A publish that fails is logged; the write still stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from modelmux.config.state import StateConfig
from modelmux.state.redis import redis_client
from modelmux.tenancy.changes import EVERYTHING, parse, payload
from modelmux.tenancy.store import TenancyStore

log = logging.getLogger("modelmux.tenancy")

WAIT_SECONDS = 5.0
"""How long one read of the subscription waits for a message before checking it again."""


class RedisFanout:
    """Publishes ``store``'s writes and delivers the other instances' to it."""

    def __init__(self, config: StateConfig, store: TenancyStore, *,
                 retry_seconds: float = 1.0) -> None:
        """Raises:
            ConfigError: the ``redis`` package is missing.
        """
        from redis.exceptions import RedisError

        self.channel = f"{config.key_prefix}tenancy"
        self.store = store
        self.retry_seconds = retry_seconds
        self.client = redis_client(config)
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._me = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._tried = asyncio.Event()
        store.on_write(self._wrote)

    async def start(self, wait: float = 2.0) -> None:
        """Subscribe in the background; waits up to ``wait`` seconds for the first attempt,
        so changes made right after the start are heard (Redis being down never fails it)."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="modelmux-tenancy-fanout")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._tried.wait(), wait)

    async def close(self) -> None:
        """Stop listening; publishes still in flight get a moment to finish."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sends:
            await asyncio.wait(set(self._sends), timeout=1.0)
        await self.client.aclose()

    def _wrote(self, kind: str, id: str) -> None:
        send = asyncio.get_running_loop().create_task(self._publish(payload(kind, id)))
        self._sends.add(send)
        send.add_done_callback(self._sends.discard)

    async def _publish(self, text: str) -> None:
        try:
            await self.client.publish(self.channel, f"{self._me}|{text}")
        except self._errors as exc:
            log.warning("could not publish a tenancy change on Redis: %s: %s",
                        type(exc).__name__, exc)

    def _heard(self, data: Any) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        sender, sep, body = text.partition("|")
        if not sep or sender == self._me:
            return
        notice = parse(body)
        if notice is not None:
            self.store.notice(*notice)

    async def _listen(self) -> None:
        """Subscribe, read messages as they come; on a lost connection, subscribe again."""
        lost = False
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if lost:
                    log.warning("tenancy Redis subscription back; dropping every cached record")
                    self.store.notice(*EVERYTHING)
                lost = False
                self._tried.set()
                while True:
                    message = await pubsub.get_message(timeout=WAIT_SECONDS)
                    if message is not None and message.get("type") == "message":
                        self._heard(message.get("data"))
                    elif message is None:
                        await pubsub.ping()  # a dead connection raises here
            except self._errors as exc:
                if not lost:
                    log.warning("tenancy Redis subscription lost (%s: %s); retrying",
                                type(exc).__name__, exc)
                lost = True
                self._tried.set()
            finally:
                with contextlib.suppress(*self._errors):
                    await pubsub.aclose()
            await asyncio.sleep(self.retry_seconds)
