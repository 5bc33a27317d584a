"""The relay fuzz target's invariant (the twins agree, cuts change nothing), as a bounded run."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import load


def test_relay_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    load("relay_fuzz").smoke(5000, seed=11)
    assert "5000 inputs ok" in capsys.readouterr().out
