"""The finish stage: what is done once a request is over, on every route.

Every exchange's ``RequestRecord`` is given ``FinishStage.finished`` as its end hook, so the
doors, ``/v1/models``, health, admin, preflights and 404s alike are counted (metrics), logged
(the access line), published to the other workers under ``--workers`` and have their server
span ended, once the last byte went out. It is an account stage, declared in the pipeline
after spend's cost stage: that one's ``on_answer`` runs in the handler, before the exchange
ends, so the cost is on the record when the line and the metrics read it. It overrides no
``Stage`` hook, so the pipeline runs nothing of it per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelmux.observability.access import AccessLog
from modelmux.observability.gateway import GatewayMetrics
from modelmux.pipeline.stage import Stage

if TYPE_CHECKING:
    from modelmux.observability.record import RequestRecord
    from modelmux.server.exchange import Exchange

__all__ = ["FinishStage"]


class FinishStage(Stage):
    """Metrics, access line, ``--workers`` publish and server span end of each request.

    ``gauges`` brings this process's gauges (pool, connections, deployments, limits) up to
    date in ``metrics`` for ``exchange``; it runs only when a publish is due.
    """

    kind = "account"
    name = "finish"

    def __init__(self, metrics: GatewayMetrics, access_log: AccessLog,
                 gauges: Callable[[Exchange], None]) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.gauges = gauges

    def finished(self, record: RequestRecord, exchange: Exchange) -> None:
        """The exchange is over (the record's end hook): count, log, publish, end the span."""
        now = time.perf_counter_ns()
        metrics = self.metrics
        metrics.observe(record, exchange, now)
        self.access_log.log(record, exchange, now)
        if metrics.shared is not None:
            self.publish(exchange)
        if record.span is not None:
            record.span.end(record, exchange)

    def publish(self, exchange: Exchange) -> None:
        """Under ``--workers``: let the other workers' scrapes see this one's counts soon (the
        app calls it too when a request starts)."""
        metrics = self.metrics
        assert metrics.shared is not None
        metrics.shared.soon(metrics.registry, lambda: self.gauges(exchange))
