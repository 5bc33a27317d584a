"""The HTTP/1.1 parser fuzz target (twins and h11 agree on every cut), as a bounded run."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import load


def test_http1_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    load("http1_fuzz").smoke(2000, seed=5)
    assert "http1_fuzz: 2000 inputs ok" in capsys.readouterr().out
