"""JSON log lines carry the fields passed with ``extra=`` (the access log's), nothing internal."""

from __future__ import annotations

import json
import logging

from modelmux.observability.logs import JsonFormatter


def test_extra_fields_become_json_keys() -> None:
    record = logging.LogRecord("modelmux.access", logging.INFO, "f.py", 1, "GET %s", ("/health",), None)
    record.status = 200
    record.request_id = "r-1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "GET /health" and entry["logger"] == "modelmux.access"
    assert entry["status"] == 200 and entry["request_id"] == "r-1"
    assert not {"args", "msg", "lineno", "pathname", "exc_info"} & set(entry)
