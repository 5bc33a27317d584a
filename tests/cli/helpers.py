"""Running the real ``modelmux`` in a subprocess with HOME/XDG_* in a temporary folder.

The environment is scrubbed of every variable ModelMux (or 1.x) reads, except the switches that
pick the native or pure build, so a developer's own settings cannot leak into a test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.e2e.proc import modelmux_command

TIMEOUT = 60.0
KEEP = {"MODELMUX_PURE_PYTHON", "MODELMUX_REQUIRE_NATIVE"}
LEGACY = {"HOST", "PORT", "LOG_LEVEL", "STREAMING_MODE", "ENABLE_RETRIES", "MAX_RETRY_ATTEMPTS",
          "GCP_SERVICE_ACCOUNT_KEY", "LLM_PROVIDER", "LLM_URL", "LLM_MODEL", "LLM_MODEL_DISPLAY_NAME",
          "VERTEX_PROJECT", "VERTEX_REGION", "VERTEX_LOCATION", "VERTEX_PUBLISHER",
          "VERTEX_MODEL_ID", "EDITOR", "VISUAL"}


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("MODELMUX_") and k not in KEEP) and k not in LEGACY
           and not k.startswith("XDG_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_STATE_HOME=str(home / ".local/state"))
    env.update(extra)
    return env


def run(home: Path, *args: str, input: str | None = None, timeout: float = TIMEOUT,
        **env: str) -> subprocess.CompletedProcess[str]:
    """``modelmux *args`` with stdin ``input`` (empty when None); output captured as text."""
    return subprocess.run([*modelmux_command(), *args], input=input or "", capture_output=True,
                          text=True, timeout=timeout, env=clean_env(home, **env), cwd=home,
                          check=False)


def user_config(home: Path) -> Path:
    return home / ".config/modelmux/config.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def service_account(token_uri: str = "https://oauth2.googleapis.com/token") -> dict[str, str]:
    """A service-account key google-auth accepts (a real RSA key, generated per session)."""
    from cryptography.hazmat.primitives import serialization

    from tests.fakes.google_oauth import CLIENT_EMAIL, rsa_key

    pem = rsa_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "fake-project", "private_key_id": "kid-1",
            "private_key": pem, "client_email": CLIENT_EMAIL, "client_id": "1234567890",
            "token_uri": token_uri}
