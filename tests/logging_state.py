"""The ``modelmux`` logger's handlers, level and propagation, put back after a test changes them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def restored_logging() -> Iterator[logging.Logger]:
    """The ``modelmux`` logger; afterwards its handlers, level and propagation are as before and
    any handler added meanwhile is closed (a log file is not left open)."""
    root = logging.getLogger("modelmux")
    saved = (list(root.handlers), root.level, root.propagate)
    try:
        yield root
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:], root.level, root.propagate = saved
