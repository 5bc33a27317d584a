"""The native/pure selector: environment switches and the reported implementation."""

from __future__ import annotations

import pytest

from modelmux import _accel


def test_pure_python_switch_forces_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMUX_PURE_PYTHON", "1")
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
