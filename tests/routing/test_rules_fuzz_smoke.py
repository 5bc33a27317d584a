"""The rules fuzz target's invariant, run as a bounded smoke test."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TARGET = Path(__file__).resolve().parents[2] / "fuzz" / "rules_fuzz.py"


def test_fuzz_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("rules_fuzz", TARGET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.smoke(3000, seed=7)
    assert "3000 inputs ok" in capsys.readouterr().out
