"""The InvokeModelWithResponseStream fuzz target's invariant (twins agree call for call, cuts
change nothing, one clean end or one error, only EventStreamError escapes), as a bounded run."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import load


def test_invoke_stream_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    load("invoke_stream_fuzz").smoke(1500, seed=18)
    assert "1500 inputs ok" in capsys.readouterr().out
