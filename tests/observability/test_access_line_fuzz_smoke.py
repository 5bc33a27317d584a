"""The access line fuzz target's invariant (the twins agree, one clean line), as a bounded run."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import load


def test_access_line_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    load("access_line_fuzz").smoke(2000, seed=5)
    assert "access_line_fuzz: 2000 inputs ok" in capsys.readouterr().out
