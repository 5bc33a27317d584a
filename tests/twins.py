"""Parametrise a test over the native and pure-Python twins of a hot-path module.

Under ``MODELMUX_PURE_PYTHON=1`` only the pure twin runs; under ``MODELMUX_REQUIRE_NATIVE=1`` a
missing native build fails the test instead of skipping it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from modelmux import _accel


def twin_params(name: str, pure: str) -> list[object]:
    """pytest params ``py`` and ``native`` for ``modelmux._speedups.<name>`` and its twin."""
    params: list[object] = [pytest.param(pure, id="py")]
    if not _accel.pure_forced():
        params.append(pytest.param(f"modelmux._speedups.{name}", id="native"))
    return params


def import_twin(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if _accel.native_required():
            pytest.fail(f"native module {module} is required but missing: {exc}")
        pytest.skip(f"native module {module} is not built")
