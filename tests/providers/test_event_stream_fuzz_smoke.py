"""The Gemini/Cohere stream fuzz target's invariant (cuts change nothing, one clean end or
one error), as a bounded run."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import load


def test_event_stream_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    load("event_stream_fuzz").smoke(2000, seed=5)
    assert "2000 inputs ok" in capsys.readouterr().out
