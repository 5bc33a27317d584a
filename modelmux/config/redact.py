"""The effective configuration with its secrets replaced, for ``config show`` and the dashboard."""

from __future__ import annotations

import re
from typing import Any

from modelmux.config.state import hide_password

SECRET_KEYS = {"api_key", "credentials_json", "key", "viewer_key", "master_key", "password",
               "alert_webhook"}  # key: [admin] key; a webhook URL carries its token
DSN_KEYS = {"postgres_dsn"}  # user:password@host: only the password goes
SECRET_HEADER = re.compile(r"authorization|cookie|key|token|secret|password", re.IGNORECASE)
REDACTED = "<redacted>"


def redact(data: Any, key: str = "") -> Any:
    """A copy of ``data`` with secrets (keys, inline credentials, auth headers) replaced."""
    if isinstance(data, dict):
        out = {k: (REDACTED if v and (k in SECRET_KEYS or (key == "headers" and SECRET_HEADER.search(k)))
                   else redact(v, k)) for k, v in data.items()}
        if key == "state" and isinstance(out.get("url"), str):  # redis://user:password@host
            out["url"] = hide_password(out["url"], REDACTED)
        for name in DSN_KEYS & out.keys():
            if isinstance(out[name], str):
                out[name] = hide_password(out[name], REDACTED)
        return out
    if isinstance(data, list):
        return [redact(v, key) for v in data]
    return data
