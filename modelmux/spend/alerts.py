"""Alerts and reports out: a JSON webhook POST (retried with backoff) and email over SMTP.

Both use the standard library in a worker thread (``urllib``, ``smtplib``), so the event loop
never waits on them; each delivery is a task kept until it ends (``aclose`` waits). A budget
alert says: scope, id, spent, budget, period, threshold. Credentials never reach a log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import urllib.request
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from modelmux.config.features import SmtpConfig
from modelmux.spend.budget import Crossing

__all__ = ["Alerter", "crossing_payload", "send_email", "post_json"]

log = logging.getLogger("modelmux.spend")

ATTEMPTS = 4
BASE_DELAY = 0.5
TIMEOUT = 10.0


def crossing_payload(crossing: Crossing) -> dict[str, Any]:
    """The webhook's JSON for one crossed threshold."""
    budget = crossing.budget
    return {"type": "budget_alert", "scope": budget.scope, "id": budget.ident or None,
            "spent": round(crossing.spent, 6), "budget": budget.limit,
            "period": budget.period, "period_label": crossing.period_label,
            "threshold": crossing.threshold}


def post_json(url: str, payload: dict[str, Any]) -> int:
    """POST ``payload`` as JSON (blocking; run in a thread); the status.

    Raises:
        OSError: the connection failed or the status was not 2xx (urllib.error.URLError).
    """
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"content-type": "application/json",
                                              "user-agent": "modelmux-alerts"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310 - configured
        return int(answer.status)


def send_email(smtp: SmtpConfig, to: list[str], subject: str, text: str) -> None:
    """Send one plain-text email (blocking; run in a thread).

    Raises:
        OSError, smtplib.SMTPException: the server could not be reached or refused it.
    """
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = smtp.sender, ", ".join(to), subject
    message.set_content(text)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.username:
            client.login(smtp.username, smtp.password or "")
        client.send_message(message)


def _where(url: str) -> str:
    """A URL without credentials, path or query, for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


class Alerter:
    """Delivers alerts and reports to a webhook and/or email addresses."""

    def __init__(self, *, webhook: str | None, emails: list[str], smtp: SmtpConfig,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 attempts: int = ATTEMPTS) -> None:
        self.webhook = webhook
        self.emails = emails
        self.smtp = smtp
        self.sleep = sleep
        self.attempts = attempts
        self._tasks: set[asyncio.Task[None]] = set()

    def fire(self, crossing: Crossing) -> None:
        """Send one budget alert (in the background)."""
        payload = crossing_payload(crossing)
        who = "global" if crossing.budget.scope == "global" else \
            f"{crossing.budget.scope} {crossing.budget.ident}"
        subject = (f"ModelMux: {who} budget at {crossing.threshold:.0%} "
                   f"(${crossing.spent:.2f} of ${crossing.budget.limit:g}, "
                   f"{crossing.period_label})")
        log.warning("budget alert: %s", subject.removeprefix("ModelMux: "))
        self.send(payload, subject, json.dumps(payload, indent=2), self.webhook, self.emails)

    def send(self, payload: dict[str, Any], subject: str, text: str, webhook: str | None,
             emails: list[str]) -> None:
        """Deliver ``payload`` to ``webhook`` and ``text`` to ``emails`` (in the background)."""
        if webhook:
            self._spawn(self._post(webhook, payload))
        if emails:
            self._spawn(self._email(emails, subject, text))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, payload: dict[str, Any]) -> None:
        for attempt in range(self.attempts):
            try:
                await asyncio.to_thread(post_json, url, payload)
                return
            except OSError as exc:
                if attempt + 1 == self.attempts:
                    log.error("alert webhook %s failed %d times, giving up: %s", _where(url),
                              self.attempts, exc)
                    return
                await self.sleep(BASE_DELAY * 2 ** attempt)

    async def _email(self, to: list[str], subject: str, text: str) -> None:
        for attempt in range(self.attempts):
            try:
                await asyncio.to_thread(send_email, self.smtp, to, subject, text)
                return
            except (OSError, smtplib.SMTPException) as exc:
                if attempt + 1 == self.attempts:
                    log.error("alert email via %s:%d failed %d times, giving up: %s",
                              self.smtp.host, self.smtp.port, self.attempts, exc)
                    return
                await self.sleep(BASE_DELAY * 2 ** attempt)

    async def aclose(self) -> None:
        """Wait for the deliveries under way."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
