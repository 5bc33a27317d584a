"""``serve`` hides start-up objects from the cycle collector and collects less often."""

from __future__ import annotations

import gc
import weakref

from modelmux.cli.serve import GC_THRESHOLDS, freeze_start_up


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_start_up_is_frozen_and_later_cycles_are_still_collected() -> None:
    before = gc.get_threshold()
    try:
        freeze_start_up()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[0] > before[0]
        node = _Node()
        gone = weakref.ref(node)
        del node
        assert gone() is not None  # a cycle: reference counting alone keeps it
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
