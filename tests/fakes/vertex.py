"""A fake Vertex AI endpoint serving both publishers of one project: ``publishers/anthropic``
(Claude, ``FakeClaude``'s Vertex flavour) and ``publishers/google`` (Gemini, ``FakeGemini``'s
Vertex mode), behind one origin and one OAuth token check, as the real host is."""

from __future__ import annotations

from collections.abc import Callable

from tests.fakes.answers import TEXT, Answer
from tests.fakes.claude import FakeClaude
from tests.fakes.gemini import FakeGemini
from tests.fakes.http import FakeServer, Reply, Request, Split, whole


class FakeVertex(FakeServer):
    """``claude`` and ``gemini`` hold what each publisher received (bodies, paths, faults)."""

    def __init__(self, *, token_ok: Callable[[str], bool], answer: Answer = TEXT,
                 split: Split = whole) -> None:
        super().__init__(split=split)
        self.claude = FakeClaude(flavour="vertex", token_ok=token_ok, answer=answer)
        self.gemini = FakeGemini(token_ok=token_ok, answer=answer)

    async def handle(self, request: Request) -> Reply:
        if "/publishers/google/" in request.path:
            return await self.gemini.handle(request)
        return await self.claude.handle(request)
