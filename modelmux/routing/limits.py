"""Rate limits for one deployment or key: token buckets and a concurrency gate.

``TokenBucket``, ``Concurrency``, ``DeploymentLimits`` and ``per_minute`` come from the native
twin (``modelmux._speedups.limits``) when it is built, else from ``_limits_py``, the readable
reference (``_accel``). The admit stage's native gate works on the native buckets' fields
directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux import _accel

if TYPE_CHECKING:
    from modelmux.routing._limits_py import Concurrency, DeploymentLimits, TokenBucket, per_minute
else:
    _twin = _accel.load("limits", "modelmux.routing._limits_py")
    TokenBucket, Concurrency = _twin.TokenBucket, _twin.Concurrency
    DeploymentLimits, per_minute = _twin.DeploymentLimits, _twin.per_minute

__all__ = ["Concurrency", "DeploymentLimits", "TokenBucket", "per_minute"]
