"""Change notices: who to tell when a team, user or key changes, and the wire form of a notice.

A notice is ``(kind, id)`` with kind "team", "user" or "key", or ``("*", "")`` meaning
"anything may have changed; drop every cached record" (sent after a fan-out connection was
lost and came back, since notices sent meanwhile are gone). Across instances a notice travels
as the text ``"kind:id"`` (PostgreSQL NOTIFY payload on ``CHANNEL``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

CHANNEL = "modelmux_tenancy"
EVERYTHING = ("*", "")
KINDS = frozenset({"team", "user", "key"})

log = logging.getLogger("modelmux.tenancy")

Callback = Callable[[str, str], None]


def payload(kind: str, id: str) -> str:
    """The text form of a notice."""
    return f"{kind}:{id}"


def parse(text: str) -> tuple[str, str] | None:
    """A notice from its text form; None for anything else (ignored, never fatal)."""
    kind, sep, id = text.partition(":")
    if sep and (kind in KINDS and id or (kind, id) == EVERYTHING):
        return kind, id
    return None


class Callbacks:
    """The ``on_change`` subscribers of one store. A failing callback is logged and the rest
    still run: one broken cache must not keep a revocation from the others."""

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []

    def add(self, callback: Callback) -> None:
        self._callbacks.append(callback)

    def fire(self, kind: str, id: str) -> None:
        for callback in self._callbacks:
            try:
                callback(kind, id)
            except Exception:
                log.exception("tenancy change callback failed for %s %s", kind, id)
