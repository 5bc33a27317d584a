"""Fixtures of the observability tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every ``modelmux`` record at DEBUG, even when ``logs.setup`` stopped propagation."""
    root = logging.getLogger("modelmux")
    level, propagate = root.level, root.propagate
    root.addHandler(caplog.handler)
    root.setLevel(logging.DEBUG)
    root.propagate = False  # caplog's handler is attached here, not reached twice via the root
    try:
        yield caplog
    finally:
        root.removeHandler(caplog.handler)
        root.setLevel(level)
        root.propagate = propagate
