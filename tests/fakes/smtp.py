"""A tiny SMTP server on loopback (RFC 5321's commands smtplib sends: EHLO/HELO, MAIL, RCPT,
DATA, RSET, NOOP, QUIT), keeping each message it receives; ``smtpd`` left the standard
library in Python 3.12, so the tests speak the protocol themselves."""

from __future__ import annotations

import asyncio
import email
from email.message import Message
from typing import Self


class FakeSMTP:
    """Accepts every message; ``messages`` holds them parsed, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.port = 0
        self.received = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        sender, recipients = "", []
        try:
            await reply("220 fake-smtp ready")
            for _ in range(1000):  # bounded: a session of at most 1000 commands
                line = (await reader.readline()).decode("ascii", "replace").rstrip("\r\n")
                verb = line.split(" ", 1)[0].upper()
                if not line or verb == "QUIT":
                    await reply("221 bye")
                    return
                if verb in ("EHLO", "HELO"):
                    await reply("250 fake-smtp")
                elif verb == "MAIL":
                    sender, recipients = line.split(":", 1)[1].strip(), []
                    await reply("250 ok")
                elif verb == "RCPT":
                    recipients.append(line.split(":", 1)[1].strip())
                    await reply("250 ok")
                elif verb == "DATA":
                    await reply("354 end with <CRLF>.<CRLF>")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    body = data[:-5].replace(b"\r\n..", b"\r\n.")
                    self.messages.append(email.message_from_bytes(body))
                    self.envelopes.append((sender, recipients))
                    self.received.set()
                    await reply("250 queued")
                elif verb in ("RSET", "NOOP"):
                    await reply("250 ok")
                else:
                    await reply("502 not implemented")
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
