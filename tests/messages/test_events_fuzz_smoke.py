"""The Messages stream fuzz target's invariant (cuts change nothing, one clean end), bounded."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import load


def test_messages_events_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    load("messages_events_fuzz").smoke(3000, seed=7)
    assert "3000 inputs ok" in capsys.readouterr().out
