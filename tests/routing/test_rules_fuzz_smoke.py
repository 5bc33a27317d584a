"""The rules fuzz target's invariant, run as a bounded smoke test."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import load


def test_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    load("rules_fuzz").smoke(3000, seed=7)
    assert "3000 inputs ok" in capsys.readouterr().out
