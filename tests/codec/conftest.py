"""The SSE twin (pure, and native when built) each SSE test body runs against."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.twins import import_twin, twin_params


@pytest.fixture(scope="module", params=twin_params("sse", "modelmux.codec._sse_py"))
def sse(request: pytest.FixtureRequest) -> ModuleType:
    return import_twin(request.param)
