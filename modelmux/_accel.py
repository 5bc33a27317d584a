"""Chooses the native (Cython) or pure-Python twin of each hot-path module.

``MODELMUX_PURE_PYTHON=1`` forces the twins; ``MODELMUX_REQUIRE_NATIVE=1`` turns a missing native
build into an ImportError instead of a quiet fallback. Both at once contradict each other: the
server, ``modelmux doctor`` and ``setup.py`` (which loads this file) all refuse them with
``CONFLICT``. Both twins expose the same API.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

NATIVE_MODULES: tuple[str, ...] = ("sse", "messages_stream", "http1", "http1_client",
                                   "chunk_relay", "eventstream", "converse_stream", "access_line",
                                   "invoke_stream", "gate", "limits")


CONFLICT = ("MODELMUX_PURE_PYTHON=1 and MODELMUX_REQUIRE_NATIVE=1 contradict each other: "
            "unset one of them (or set it to 0)")


def pure_forced() -> bool:
    return os.environ.get("MODELMUX_PURE_PYTHON", "") == "1"


def native_required() -> bool:
    return os.environ.get("MODELMUX_REQUIRE_NATIVE", "") == "1"


def conflict() -> str | None:
    """``CONFLICT`` when both switches are on, else None."""
    return CONFLICT if pure_forced() and native_required() else None


def load(name: str, pure: str) -> ModuleType:
    """Return ``modelmux._speedups.<name>`` or the pure module ``pure``.

    Raises:
        ImportError: the native module is required but cannot be imported, or both switches
            are on.
    """
    if conflict():
        raise ImportError(CONFLICT)
    if pure_forced():
        return importlib.import_module(pure)
    try:
        return importlib.import_module(f"modelmux._speedups.{name}")
    except ImportError:
        if native_required():
            raise
        return importlib.import_module(pure)


def native_available(name: str) -> bool:
    try:
        importlib.import_module(f"modelmux._speedups.{name}")
    except ImportError:
        return False
    return True


def implementation() -> str:
    """Describe the active implementation, e.g. ``native (sse)`` or ``pure-python``."""
    if conflict():
        return f"none: {CONFLICT}"
    if pure_forced():
        return "pure-python (forced by MODELMUX_PURE_PYTHON=1)"
    native = [name for name in NATIVE_MODULES if native_available(name)]
    if not native:
        return "pure-python (no native build)"
    if len(native) < len(NATIVE_MODULES):
        return f"mixed (native: {', '.join(native)})"
    return f"native ({', '.join(native)})"
