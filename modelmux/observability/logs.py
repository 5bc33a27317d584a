"""Process-wide logging set-up for the CLI (the library itself only creates loggers).

Logs always go to stderr (journald and ``brew services`` capture it); with ``[logging] file`` they
also go to that file, reopened when logrotate moves it. Lines are written through a ``LineLog``
(``linelog.py``): ordinary records at once, access lines in batches.

A record is one line whatever its message holds: both formats escape control characters and line
separators (``\\n``, ``\\x1b``, ``\\u2028``), so a client value (a model name, a body) cannot start
a line that reads as a record of its own. A text traceback's lines are escaped and indented.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys

from modelmux.observability.linelog import LineHandler, LineLog, LogTarget

LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
          "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""C0 and C1 controls, DEL, and the Unicode line and paragraph separators."""
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_INDENT = "  "


def _text_escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape(text: str) -> str:
    """``text`` with its control characters and line separators written as escapes."""
    return text if text.isprintable() else _UNSAFE.sub(_text_escape, text)


def json_line(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with the characters it leaves raw
    that end or garble a line (DEL, C1, U+2028, U+2029) written as ``\\u`` escapes."""
    if text.isascii() and "\x7f" not in text:  # json.dumps has escaped every C0 control
        return text
    return _UNSAFE.sub(_json_escape, text)


class OneLine(str):
    """A format string whose arguments the caller has made one printable line already (the
    access log's logfmt quotes and escapes as it builds): the text format does not scan them."""


ONE_LINE = OneLine("%s")


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, one line per record: the message is escaped; a traceback or stack
    follows on lines that are escaped and indented, so only a record starts a line."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        record.message = message if type(record.msg) is OneLine else escape(message)
        record.asctime = self.formatTime(record)
        line = self.formatMessage(record)
        if not (record.exc_info or record.exc_text or record.stack_info):
            return line
        blocks: list[str] = []
        if record.exc_info:
            blocks.append(self.formatException(record.exc_info))
        elif record.exc_text:
            blocks.append(record.exc_text)
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        return "\n".join([line, *(_INDENT + escape(part) for block in blocks
                                   for part in block.splitlines())])


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
        return json_line(json.dumps(entry, ensure_ascii=False, default=str))


def _stderr_target() -> LogTarget:
    """``sys.stderr`` as it is now: its descriptor, or the stream itself when it has none."""
    try:
        sys.stderr.flush()
        return LogTarget(fd=sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return LogTarget(stream=sys.stderr)


_installed: LineHandler | None = None


def setup(level: str = "info", fmt: str = "text", file: str | None = None) -> str | None:
    """Log to stderr (and ``file``) at ``level``; returns why the file could not be used, if so.

    Every line goes through one ``LineLog``, the access log's buffer, so access lines and
    ordinary lines reach each destination whole and in order.
    """
    global _installed
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    targets = [_stderr_target()]
    trouble = None
    if file:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
            targets.append(LogTarget(path=file))
        except OSError as exc:
            trouble = f"cannot write the log file {file}: {exc.strerror or exc}; logging to stderr only"
    handler = LineHandler(LineLog(targets, fmt), formatter)
    root = logging.getLogger("modelmux")
    for old in root.handlers:
        if isinstance(old, (logging.FileHandler, LineHandler)):
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level.lower(), logging.INFO))
    root.propagate = False
    _installed = handler
    return trouble


def line_log(logger: logging.Logger) -> LineLog | None:
    """The ``LineLog`` that ``setup`` installed, when it is the only place ``logger``'s
    records go (no handler, filter or propagation added since): then a line may be appended
    to it directly, formatted as its handler would. None otherwise (embedding, tests'
    capture): log through ``logger``."""
    handler = _installed
    if handler is None or logger.handlers or logger.filters or not logger.propagate:
        return None
    parent = logger.parent
    handlers = parent.handlers if parent is not None else ()
    if (len(handlers) != 1 or handlers[0] is not handler or parent.propagate  # type: ignore[union-attr]
            or handler.filters or parent.filters):  # type: ignore[union-attr]
        return None
    return handler.lines
