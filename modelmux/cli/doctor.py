"""``modelmux doctor``: one line per check, exit 1 when any check fails.

Checks: the configuration is valid; each provider's credentials load (Vertex: and mint a
token); each configured ``tokenizer`` file loads; each provider's host answers a TCP (and TLS)
handshake unless ``--offline``; the listen port is free, or a ModelMux already serves there
(its ``/health`` answers); the native build is active; versions. A pure-Python build is a
warning, not a failure, unless ``MODELMUX_REQUIRE_NATIVE=1``; that and ``MODELMUX_PURE_PYTHON=1``
together fail.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.metadata
import json
import os
import platform
import socket
import ssl
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from modelmux import __version__, _accel
from modelmux.cli.common import FAILED, OK, add_config_option
from modelmux.cli.preflight import build_problems
from modelmux.config.load import LoadedConfig, load_config
from modelmux.config.problems import ConfigError
from modelmux.config.providers import (
    AnthropicConfig,
    AzureConfig,
    BedrockConfig,
    HuggingFaceConfig,
    OpenAICompatibleConfig,
    OpenAIConfig,
    ProviderConfig,
    VertexConfig,
)

TIMEOUT = 5.0
TOKEN_TIMEOUT = 20.0
HEALTH_TIMEOUT = 2.0
MAX_HEALTH = 64 * 1024
Check = tuple[str, str, str]
"""(status: ok | warn | FAIL | skip, what, detail)."""
EPILOG = """EXAMPLES:
  modelmux doctor
  modelmux doctor --offline            no network: skip reachability and token minting
  modelmux doctor --config ./config.toml"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "doctor", help="check config, credentials, providers, port and build", epilog=EPILOG,
        description="Check that ModelMux can run: one line per check, exit code 1 when any fails.")
    parser.add_argument("--offline", action="store_true",
                        help="skip checks that use the network")
    add_config_option(parser)


OPENAI_FORMAT = (OpenAICompatibleConfig, OpenAIConfig, HuggingFaceConfig, AzureConfig)
"""Provider configs with a ``base_url`` and an optional ``api_key``."""


def origin_of(provider: ProviderConfig) -> str | None:
    """``scheme://host[:port]`` a provider talks to, or None (mock)."""
    if isinstance(provider, OPENAI_FORMAT + (AnthropicConfig,)):
        return provider.base_url
    if isinstance(provider, VertexConfig):
        from modelmux.providers.vertex import vertex_origin

        return vertex_origin(provider.region, provider.base_url)
    if isinstance(provider, BedrockConfig):
        return provider.base_url or f"https://bedrock-runtime.{provider.region}.amazonaws.com"
    return None


def reach(url: str, timeout: float = TIMEOUT) -> str:
    """Connect (and shake hands, for https) to the URL's host.

    Raises:
        OSError: the host does not resolve, refuses, times out or fails TLS.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        if parts.scheme == "https":
            with ssl.create_default_context().wrap_socket(raw, server_hostname=host) as tls:
                return f"{host}:{port} ({tls.version()})"
    return f"{host}:{port}"


async def _mint(provider: VertexConfig) -> str:
    from modelmux.providers.vertex import token_source

    source = token_source(provider)
    try:
        await asyncio.wait_for(source.token(), TOKEN_TIMEOUT)
    finally:
        await source.aclose()
    return "token minted"


def credential_check(provider: ProviderConfig, offline: bool) -> Check | None:
    label = f"credentials {provider.name}"
    if isinstance(provider, VertexConfig):
        named = provider.credentials_file or provider.credentials_env or (
            "inline JSON" if provider.credentials_json else None)
        if offline:
            if named is None:
                return "skip", label, "Application Default Credentials (not checked offline)"
            return "ok", label, f"{named} loads (offline: no token minted)"
        try:
            detail = asyncio.run(_mint(provider))
        except Exception as exc:  # noqa: BLE001 - every failure is this check's answer
            return "FAIL", label, f"{named or 'Application Default Credentials'}: {exc}"
        return "ok", label, f"{named or 'Application Default Credentials'}: {detail}"
    if isinstance(provider, AzureConfig) and provider.entra_id:
        way = "client credentials" if provider.client_secret else "managed identity"
        return "ok", label, f"Entra ID {way} (no token fetched by doctor)"
    if isinstance(provider, BedrockConfig):
        return _aws_check(provider, label)
    if isinstance(provider, OPENAI_FORMAT + (AnthropicConfig,)):
        if provider.api_key:
            return "ok", label, "API key set"
        return "warn", label, "no API key (fine for servers that need none)"
    return None


def _aws_check(provider: BedrockConfig, label: str) -> Check:
    """Where the AWS keys come from, without the network (no container or instance query)."""
    import os

    from modelmux.auth.aws import from_env, from_files

    if provider.access_key_id is not None:
        return "ok", label, "AWS keys set in the config"
    if from_env(os.environ) is not None:
        return "ok", label, "AWS keys from the environment"
    if os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") and os.environ.get("AWS_ROLE_ARN"):
        return "ok", label, f"web identity for {os.environ['AWS_ROLE_ARN']} (not exchanged)"
    if from_files(os.environ) is not None:
        profile = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or "default"
        return "ok", label, f"AWS keys from the shared files, profile {profile}"
    return "warn", label, ("no AWS keys in the config, the environment or the shared files: a "
                           "container or instance role must provide them")


def checks(loaded: LoadedConfig | None, error: ConfigError | None, offline: bool) -> Iterator[Check]:
    if _accel.conflict():  # every check below loads the hot-path modules, which refuse it
        yield "FAIL", "native build", _accel.CONFLICT
        yield "skip", "other checks", "they load the native or pure modules: fix the switches first"
        yield "ok", "versions", versions()
        return
    if loaded is None:
        assert error is not None
        yield "FAIL", "config", "invalid: " + "; ".join(p.render() for p in error.problems)
    else:
        problems = build_problems(loaded.config, loaded.origins)
        files = ", ".join(map(str, loaded.files)) or "no file: built-in defaults"
        if problems:
            yield "FAIL", "config", "invalid: " + "; ".join(p.render() for p in problems)
        else:
            note = f" ({len(loaded.warnings)} warnings: see `modelmux config validate`)" \
                if loaded.warnings else ""
            yield "ok", "config", f"valid: {files}{note}"
            for provider in loaded.config.provider:
                found = credential_check(provider, offline)
                if found is not None:
                    yield found
            yield from tokenizer_checks(loaded.config.provider)
        for provider in loaded.config.provider:
            url = origin_of(provider)
            if url is None:
                yield "ok", f"provider {provider.name}", "built in (no network)"
            elif offline:
                yield "skip", f"provider {provider.name}", f"{url} (offline)"
            else:
                try:
                    yield "ok", f"provider {provider.name}", f"{url} reachable: {reach(url)}"
                except (OSError, ValueError) as exc:
                    yield "FAIL", f"provider {provider.name}", f"{url} unreachable: {exc}"
        server = loaded.config.server
        yield port_check(server.host, server.port, tls=server.tls is not None)
    implementation = _accel.implementation()
    if implementation.startswith("native"):
        yield "ok", "native build", implementation
    else:
        yield ("FAIL" if _accel.native_required() else "warn"), "native build", implementation
    yield "ok", "versions", versions()


def tokenizer_checks(providers: list[ProviderConfig]) -> Iterator[Check]:
    """Each configured ``tokenizer`` file loaded as count_tokens will load it (config checks
    only that it is readable; a file that is not a tokenizer shows here, not at start-up)."""
    from modelmux.api.token_estimate import tokenizer_files
    from modelmux.api.tokenizer_files import load_tokenizer_json

    for (provider, model), path in tokenizer_files(providers).items():
        label = f"tokenizer {provider}" + (f"/{model}" if model is not None else "")
        try:
            size = load_tokenizer_json(path).get_vocab_size()
        except (ImportError, OSError, ValueError) as exc:
            yield "FAIL", label, f"{path}: {exc}"
        else:
            yield "ok", label, f"{path} loads ({size} tokens)"


def port_check(host: str, port: int, tls: bool = False) -> Check:
    """Free, or held by a ModelMux that answers ``/health`` there (ok); else FAIL."""
    label = f"port {host}:{port}"
    if port == 0:
        return "ok", label, "0 picks a free port at start"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        found = running_modelmux(host, port, tls)
        if found is None:
            return "FAIL", label, f"cannot listen: {exc.strerror or exc}"
        state = "" if found.get("status") == "ok" else f"{found.get('status')}, "
        if "version" not in found:  # auth is on and no MODELMUX_MASTER_KEY: the status only
            return "ok", label, f"a server answers /health there ({found.get('status')})"
        detail = f"modelmux {found['version']} is running there ({state}pid {found.get('pid', '?')})"
        return "ok", label, detail
    return "ok", label, "free"


def running_modelmux(host: str, port: int, tls: bool) -> dict[str, Any] | None:
    """What ``GET /health`` on ``host:port`` answers when a ModelMux serves there, else None."""
    target = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if tls:  # only asks who is there: the server's own, possibly self-signed, certificate will do
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            target, port, timeout=HEALTH_TIMEOUT, context=context)
    else:
        conn = http.client.HTTPConnection(target, port, timeout=HEALTH_TIMEOUT)
    try:
        key = os.environ.get("MODELMUX_MASTER_KEY")  # with auth on, /health tells it the details
        conn.request("GET", "/health", headers={"authorization": f"Bearer {key}"} if key else {})
        answer = json.loads(conn.getresponse().read(MAX_HEALTH))
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
    if isinstance(answer, dict) and isinstance(answer.get("version"), str) \
            and answer.get("status") in ("ok", "starting") and "uptime_seconds" in answer:
        return answer
    if answer in ({"status": "ok"}, {"status": "starting"}):  # auth on, asked anonymously
        return answer  # type: ignore[no-any-return]
    return None


def versions() -> str:
    found = [f"modelmux {__version__}", f"Python {platform.python_version()}"]
    for name in ("msgspec", "h11", "h2", "uvloop", "google-auth"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found) + f" ({platform.system()} {platform.machine()})"


def run(ns: argparse.Namespace) -> int:
    loaded, error = None, None
    try:
        loaded = load_config(ns.config)
    except ConfigError as exc:
        error = exc
    for note in loaded.notes if loaded else []:
        print(f"modelmux: {note}", file=sys.stderr)
    failed = False
    for status, what, detail in checks(loaded, error, ns.offline):
        failed = failed or status == "FAIL"
        print(f"[{status:^4}] {what}: {detail}", flush=True)
    return FAILED if failed else OK
