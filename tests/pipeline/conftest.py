"""The gate twin (``_gate_py``, and ``modelmux._speedups.gate`` when built) that the admit and
key-gate tests run on: a module using ``gate_twin`` runs once on each."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from modelmux.pipeline import admit, ratelimits
from tests.twins import import_twin, twin_params


@pytest.fixture(scope="module", params=twin_params("gate", "modelmux.pipeline._gate_py"))
def gate_twin(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """Stages built while it is in use take their ``Gate`` and ``Meter`` from the twin."""
    twin = import_twin(request.param)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(admit, "Gate", twin.Gate)
        patch.setattr(admit, "Meter", twin.Meter)
        patch.setattr(ratelimits, "Meter", twin.Meter)
        patch.setattr(ratelimits, "Gauge", twin.Gauge)
        patch.setattr(ratelimits, "duration_ms", twin.duration_ms)
        yield twin
