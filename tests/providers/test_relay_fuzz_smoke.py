"""The relay fuzz target's invariant (the twins agree, cuts change nothing), as a bounded run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TARGET = Path(__file__).resolve().parents[2] / "fuzz" / "relay_fuzz.py"


def test_relay_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("relay_fuzz", TARGET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.smoke(5000, seed=11)
    assert "5000 inputs ok" in capsys.readouterr().out
