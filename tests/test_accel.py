"""The native/pure selector: environment switches and the reported implementation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelmux import _accel

ROOT = Path(__file__).resolve().parent.parent


def test_pure_python_switch_forces_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMUX_PURE_PYTHON", "1")
    monkeypatch.delenv("MODELMUX_REQUIRE_NATIVE", raising=False)
    module = _accel.load("sse", "modelmux.codec._sse_py")
    assert module.__name__ == "modelmux.codec._sse_py"
    assert _accel.implementation().startswith("pure-python (forced")


def test_missing_native_module_falls_back_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELMUX_PURE_PYTHON", raising=False)
    monkeypatch.delenv("MODELMUX_REQUIRE_NATIVE", raising=False)
    module = _accel.load("does_not_exist", "modelmux.codec._sse_py")
    assert module.__name__ == "modelmux.codec._sse_py"
    monkeypatch.setenv("MODELMUX_REQUIRE_NATIVE", "1")
    with pytest.raises(ImportError):
        _accel.load("does_not_exist", "modelmux.codec._sse_py")


def test_native_build_is_present_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _accel.native_required():
        pytest.skip("only meaningful when MODELMUX_REQUIRE_NATIVE=1 (the CI native leg)")
    for name in _accel.NATIVE_MODULES:
        assert _accel.native_available(name), f"modelmux._speedups.{name} is not built"
    assert _accel.implementation().startswith("native")


def test_both_switches_are_a_contradiction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMUX_PURE_PYTHON", "1")
    monkeypatch.setenv("MODELMUX_REQUIRE_NATIVE", "1")
    assert _accel.conflict() == _accel.CONFLICT
    with pytest.raises(ImportError, match="contradict"):
        _accel.load("sse", "modelmux.codec._sse_py")
    monkeypatch.setenv("MODELMUX_REQUIRE_NATIVE", "0")
    assert _accel.conflict() is None
    assert _accel.load("sse", "modelmux.codec._sse_py").__name__ == "modelmux.codec._sse_py"


def test_setup_py_refuses_both_switches(tmp_path: Path) -> None:
    """The build applies the same rule: no quiet choice of one switch over the other."""
    (tmp_path / "modelmux").mkdir()  # a copy, so nothing is built into the checkout
    shutil.copy(ROOT / "setup.py", tmp_path)
    shutil.copy(ROOT / "modelmux" / "_accel.py", tmp_path / "modelmux")
    env = {**os.environ, "MODELMUX_PURE_PYTHON": "1", "MODELMUX_REQUIRE_NATIVE": "1"}
    out = subprocess.run([sys.executable, "setup.py", "--name"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode != 0 and _accel.CONFLICT in out.stderr, out.stdout + out.stderr
