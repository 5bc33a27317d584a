"""The SSE fuzz target's invariant (the twins agree, cuts change nothing), as a bounded run."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import load


def test_sse_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    load("sse_fuzz").smoke(500, seed=3)
    assert "sse_fuzz: 500 inputs ok" in capsys.readouterr().out
