"""The gate twin (``_gate_py``, and ``modelmux._speedups.gate`` when built) that the admit and
key-gate tests run on: a module using ``gate_twin`` runs once on each."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from modelmux.pipeline import admit, ratelimits
from modelmux.routing import memory
from tests.twins import import_twin, twin_params

LIMITS = {"modelmux.pipeline._gate_py": "modelmux.routing._limits_py",
          "modelmux._speedups.gate": "modelmux._speedups.limits"}
"""The buckets each gate twin runs on (as ``MODELMUX_PURE_PYTHON`` would pair them)."""


def use_twins(patch: pytest.MonkeyPatch, twin: ModuleType, limits: ModuleType) -> None:
    """Stages and in-process stores built from now on take ``twin``'s ``Gate`` and ``Meter``
    and ``limits``' buckets."""
    patch.setattr(memory, "DeploymentLimits", limits.DeploymentLimits)
    patch.setattr(memory, "Concurrency", limits.Concurrency)
    patch.setattr(memory, "per_minute", limits.per_minute)
    patch.setattr(admit, "Gate", twin.Gate)
    patch.setattr(admit, "Meter", twin.Meter)


@pytest.fixture(scope="module", params=twin_params("gate", "modelmux.pipeline._gate_py"))
def gate_twin(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """Stages built while it is in use take their ``Gate`` and ``Meter`` from the twin, and
    in-process stores the buckets of the matching limits twin."""
    twin = import_twin(request.param)
    limits = import_twin(LIMITS[request.param])
    with pytest.MonkeyPatch.context() as patch:
        use_twins(patch, twin, limits)
        patch.setattr(ratelimits, "Meter", twin.Meter)
        patch.setattr(ratelimits, "LimitGauge", twin.LimitGauge)
        patch.setattr(ratelimits, "duration_ms", twin.duration_ms)
        yield twin
