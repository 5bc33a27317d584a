"""Process-wide logging set-up for the CLI (the library itself only creates loggers).

Logs always go to stderr (journald and ``brew services`` capture it); with ``[logging] file`` they
also go to that file, reopened when logrotate moves it (``WatchedFileHandler``).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys

LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
          "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, message, the exception, and any
    fields passed with ``extra=`` (the access log's request id, status, tokens, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname.lower(),
                 "logger": record.name, "pid": record.process, "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup(level: str = "info", fmt: str = "text", file: str | None = None) -> str | None:
    """Log to stderr (and ``file``) at ``level``; returns why the file could not be used, if so."""
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    trouble = None
    if file:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
            handlers.append(logging.handlers.WatchedFileHandler(file, encoding="utf-8"))
        except OSError as exc:
            trouble = f"cannot write the log file {file}: {exc.strerror or exc}; logging to stderr only"
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger("modelmux")
    for old in root.handlers:
        if isinstance(old, logging.FileHandler):
            old.close()
    root.handlers[:] = handlers
    root.setLevel(LEVELS.get(level.lower(), logging.INFO))
    root.propagate = False
    return trouble
