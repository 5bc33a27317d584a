"""ModelMux 1.x configuration mapped onto the 2.x schema.

``split_legacy`` runs on each file layer: 1.x keys move under ``_legacy`` (``[auth]``,
``[vertex]``, retries) or to their new home (``log_level`` → ``[logging] level``), and keys 1.x
ignored are dropped with a warning. After the layers merge, ``synthesize`` turns ``_legacy`` and
the 1.x variables into ``type = "vertex"`` providers and ``[models]`` aliases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from modelmux.config import vertex1x
from modelmux.config.features import AuthConfig
from modelmux.config.layers import Layer, ValueOrigins, move_value, origin_of, pop_value
from modelmux.config.problems import KeyPath, Problem, ValueOrigin, format_path
from modelmux.config.schema import Config, ServerConfig, StreamingConfig

LEGACY_SERVER_KEYS = ("log_level", "enable_retries", "max_retry_attempts")
AUTH_KEYS = ("service_account_file", "service_account_json")
LEGACY_ENV = ("LLM_PROVIDER", "LLM_URL", "LLM_MODEL_DISPLAY_NAME", "LLM_MODEL",
              *vertex1x.VERTEX_ENV)
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_CREDENTIALS = ("credentials_file", "credentials_json", "credentials_env")
_UNIMPLEMENTED = ("openai_compatible", "openai", "mistral", "cloudflare")


def _names(struct: type[msgspec.Struct]) -> set[str]:
    return {f.encode_name for f in msgspec.structs.fields(struct)}


def is_2x_auth(auth: Any) -> bool:
    """Whether an ``[auth]`` table is 2.x's (who may call: any ``AuthConfig`` key) rather
    than 1.x's (the Vertex service account)."""
    return isinstance(auth, dict) and any(key in auth for key in _names(AuthConfig))


def is_legacy(data: Mapping[str, Any]) -> bool:
    """Whether a parsed file uses 1.x's format (1.x's ``[auth]``, ``[vertex]`` or 1.x server
    keys)."""
    server = data.get("server")
    auth_1x = "auth" in data and not is_2x_auth(data["auth"])
    return auth_1x or "vertex" in data or (
        isinstance(server, dict) and any(key in server for key in LEGACY_SERVER_KEYS))


def split_legacy(layer: Layer) -> list[Problem]:
    """Move a 1.x file's keys to where ``synthesize`` and the schema expect them, in place."""
    data = layer.data
    if not is_legacy(data):
        return []
    note = "ModelMux 1.x format: loaded through the compatibility mapping; `modelmux config " \
           "migrate` converts it"
    server = data.get("server")
    if not (isinstance(server, dict) and "host" in server):
        note += " (1.x listened on all interfaces; 2.x listens on 127.0.0.1 unless [server] " \
                "host is set)"
    problems = [Problem(note, origin=ValueOrigin("file", layer.path, line=1), warning=True)]

    def drop(path: KeyPath) -> None:
        problems.append(Problem("unknown key; ignored (as in 1.x)", path,
                                origin_of(layer.origins, path), warning=True))
        pop_value(layer, path)

    if isinstance(server, dict):
        if "log_level" in server:
            logging = data.get("logging")
            if isinstance(logging, dict) and "level" in logging:
                problems.append(Problem("ignored: [logging] level is also set", ("server", "log_level"),
                                        origin_of(layer.origins, ("server", "log_level")), warning=True))
                pop_value(layer, ("server", "log_level"))
            else:
                move_value(layer, ("server", "log_level"), ("logging", "level"))
        for key in ("enable_retries", "max_retry_attempts"):
            move_value(layer, ("server", key), ("_legacy", "server", key))
        for key in [k for k in server if k not in _names(ServerConfig)]:
            drop(("server", key))
    streaming = data.get("streaming")
    if isinstance(streaming, dict):
        for key in [k for k in streaming if k not in _names(StreamingConfig)]:
            drop(("streaming", key))
    auth = data.get("auth")
    if not is_2x_auth(auth):
        if isinstance(auth, dict):
            for key in [k for k in auth if k not in AUTH_KEYS]:
                drop(("auth", key))
        move_value(layer, ("auth",), ("_legacy", "auth"))
    move_value(layer, ("vertex",), ("_legacy", "vertex"))
    for key in [k for k in data if k not in _names(Config) and k != "_legacy"]:
        drop((key,))
    return problems


def _check(value: Any, kind: type, path: KeyPath, origins: ValueOrigins) -> Problem | None:
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if ok and kind is int and value < 0:
        ok = False
    if ok:
        return None
    expected = {bool: "a boolean", int: "an integer >= 0", str: "a string"}[kind]
    return Problem(f"expected {expected}, got {value!r}", path, origin_of(origins, path))


def _retries(legacy: Mapping[str, Any], origins: ValueOrigins,
             problems: list[Problem]) -> tuple[int | None, ValueOrigin | None]:
    """1.x ``enable_retries``/``max_retry_attempts`` (total attempts) as 2.x ``max_retries``."""
    server = legacy.get("server", {})
    enable, attempts = server.get("enable_retries"), server.get("max_retry_attempts")
    for key, value, kind in (("enable_retries", enable, bool), ("max_retry_attempts", attempts, int)):
        if value is not None and (problem := _check(value, kind, ("server", key), origins)):
            problems.append(Problem(problem.message, ("server", key),
                                    origin_of(origins, ("_legacy", "server", key))))
            return None, None
    if enable is False:
        return 0, origin_of(origins, ("_legacy", "server", "enable_retries"))
    if attempts is None:
        return None, None
    where = origin_of(origins, ("_legacy", "server", "max_retry_attempts"))
    if attempts - 1 > 10:
        problems.append(Problem(f"{attempts} attempts is more than 2.x allows: using 10 retries",
                                ("server", "max_retry_attempts"), where, warning=True))
    return min(max(attempts - 1, 0), 10), where


def _credentials(legacy: Mapping[str, Any], origins: ValueOrigins,
                 problems: list[Problem]) -> tuple[dict[str, str], ValueOrigin | None]:
    """1.x ``[auth]`` (and ``GCP_SERVICE_ACCOUNT_KEY``) as one 2.x ``credentials_*`` setting."""
    auth = legacy.get("auth", {})
    found: dict[str, str] = {}
    for key in (*AUTH_KEYS, "service_account_key_env"):
        if key in auth:
            problem = _check(auth[key], str, ("auth", key), origins)
            if problem:
                problems.append(Problem(problem.message, ("auth", key),
                                        origin_of(origins, ("_legacy", "auth", key))))
            else:
                found[key] = auth[key]

    def where(key: str) -> ValueOrigin | None:
        return origin_of(origins, ("_legacy", "auth", key))

    if "service_account_json" in found:
        if "service_account_file" in found:
            problems.append(Problem("both service_account_json and service_account_file are set: "
                                    "the JSON wins (as in 1.x)", ("auth",),
                                    where("service_account_json"), warning=True))
        return {"credentials_json": found["service_account_json"]}, where("service_account_json")
    if "service_account_file" in found:
        path = _DOLLAR.sub(r"${\1}", found["service_account_file"])
        return {"credentials_file": path}, where("service_account_file")
    if "service_account_key_env" in found:
        return {"credentials_env": found["service_account_key_env"]}, where("service_account_key_env")
    return {}, None


def synthesize(data: dict[str, Any], origins: ValueOrigins,
               environ: Mapping[str, str]) -> list[Problem]:
    """Replace ``_legacy`` in merged data by 2.x providers and aliases; returns the problems."""
    legacy = data.pop("_legacy", {})
    given = data.get("provider")
    explicit: list[Any] = given if isinstance(given, list) else []
    use_env = not explicit
    env_used = [name for name in LEGACY_ENV if name in environ]
    if not legacy and not env_used:
        return []
    problems: list[Problem] = []
    if not use_env and env_used:
        problems.append(Problem(f"ignored: {', '.join(env_used)} (1.x variables) because the config "
                                "has [[provider]] tables",
                                origin=ValueOrigin("environment", name="1.x"),
                                warning=True))
    if use_env and "LLM_PROVIDER" in environ:
        kind = environ["LLM_PROVIDER"].strip().lower()
        where = ValueOrigin("environment", name="LLM_PROVIDER")
        if kind in _UNIMPLEMENTED:
            problems.append(Problem(f"{kind!r} was never implemented in 1.x; configure a "
                                    "[[provider]] table with type = \"openai_compatible\"", origin=where))
        elif kind not in ("vertex", ""):
            problems.append(Problem(f"unknown provider {kind!r}; 1.x supported only vertex",
                                    origin=where))
        else:
            problems.append(Problem("a ModelMux 1.x variable (deprecated), no longer needed",
                                    origin=where, warning=True))
    resolution = vertex1x.resolve(legacy.get("vertex"), ("_legacy", "vertex"), origins, environ,
                                  use_env)
    problems += _relabel(resolution.problems)
    retries, retries_origin = _retries(legacy, origins, problems)
    credentials, credentials_origin = _credentials(legacy, origins, problems)
    if resolution.default is not None:
        _add_providers(data, origins, resolution, retries, retries_origin, credentials,
                       credentials_origin, problems)
        return problems
    wanted = "vertex" in legacy or (use_env and (env_used or legacy.get("auth")))
    if wanted and not any(not p.warning for p in problems):
        missing = [n for n in vertex1x.VERTEX_ENV if n not in environ]
        hint = f" (or all VERTEX_* variables; missing {', '.join(missing)})" if use_env else ""
        problems.append(Problem(
            "no Vertex model configured: set [vertex] url, or project, region, location, "
            f"publisher and model{hint}", ("vertex",),
            origin_of(origins, ("_legacy", "vertex")) or origin_of(origins, ("_legacy", "auth"))))
    if credentials:
        _share_credentials(explicit, origins, credentials, credentials_origin, problems)
    if retries is not None:
        problems.append(Problem("has no effect without a [vertex] table: set max_retries in each "
                                "[[provider]]", ("server", "max_retry_attempts"), retries_origin,
                                warning=True))
    return problems


def _relabel(problems: list[Problem]) -> list[Problem]:
    """Show ``_legacy.vertex...`` paths as the ``vertex...`` the user wrote."""
    return [Problem(p.message, p.path[1:] if p.path[:1] == ("_legacy",) else p.path, p.origin,
                    p.warning) for p in problems]


def _share_credentials(providers: list[Any], origins: ValueOrigins, credentials: dict[str, str],
                       where: ValueOrigin | None, problems: list[Problem]) -> None:
    """1.x ``[auth]`` with no ``[vertex]``: vertex providers that name no credentials use it."""
    used = False
    for index, provider in enumerate(providers):
        if isinstance(provider, dict) and provider.get("type") == "vertex" and not any(
                key in provider for key in _CREDENTIALS):
            provider.update(credentials)
            for key in credentials:
                origins[("provider", index, key)] = where or ValueOrigin("file")
            used = True
    if not used:
        problems.append(Problem("unused: no vertex provider takes its credentials from here",
                                ("auth",), where, warning=True))


def _add_providers(data: dict[str, Any], origins: ValueOrigins, res: vertex1x.Resolution,
                   retries: int | None, retries_origin: ValueOrigin | None,
                   credentials: dict[str, str], credentials_origin: ValueOrigin | None,
                   problems: list[Problem]) -> None:
    """One ``vertex`` provider per (project, region, host); aliases for the 1.x public names."""
    assert res.default is not None
    providers: list[dict[str, Any]] = data.setdefault("provider", [])
    groups: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    taken = {p.get("name") for p in providers if isinstance(p, dict)}

    def place(target: vertex1x.VertexTarget, label: str) -> str | None:
        if target.publisher.lower() != "anthropic":
            problems.append(Problem(f"{label}: publisher {target.publisher!r} is not served: "
                                    "ModelMux's vertex provider serves Anthropic (Claude) models",
                                    origin=target.origin, warning=True))
            return None
        table = groups.get(target.group)
        if table is None:
            name, n = "vertex", 1
            while name in taken:
                n += 1
                name = f"vertex-{n}"
            taken.add(name)
            table = {"name": name, "type": "vertex", "project": target.project,
                     "region": target.region, "models": []}
            if target.base_url:
                table["base_url"] = target.base_url
            table.update(credentials)
            if retries is not None:
                table["max_retries"] = retries
            groups[target.group] = table
            index = len(providers)
            providers.append(table)
            base: KeyPath = ("provider", index)
            origins[base] = target.origin or ValueOrigin("environment")
            for key in table:
                origins[(*base, key)] = target.origins.get(key) or origins[base]
            for key in credentials:
                origins[(*base, key)] = credentials_origin or origins[base]
            if retries is not None and retries_origin is not None:
                origins[(*base, "max_retries")] = retries_origin
        if target.model not in table["models"]:
            table["models"].append(target.model)
        return f"{table['name']}/{target.model}"

    default = place(res.default, f"model {res.default.model!r}")
    aliases: dict[str, Any] = data.setdefault("models", {}) if isinstance(
        data.get("models", {}), dict) else {}
    added: dict[str, Any] = {}
    folded: set[str] = set()
    for name, target, path in res.entries:
        key = format_path(path[1:])
        if name.casefold() in folded:
            problems.append(Problem(f"`{name}` is already named by an earlier entry; this one is "
                                    "never chosen (as in 1.x)", path[1:], origin_of(origins, path),
                                    warning=True))
            continue
        folded.add(name.casefold())
        goal = default if target is None else place(target, key)
        if goal is not None:
            added[name] = {"target": goal, "ignore_case": True}
            origins[("models", name)] = origin_of(origins, path) or ValueOrigin("file")
    if default is not None:
        if res.display and res.display.casefold() not in folded:
            added = {res.display: default, **added}
            origins[("models", res.display)] = res.display_origin or ValueOrigin("environment")
        added["*"] = default
        origins[("models", "*")] = res.default.origin or ValueOrigin("environment")
    for name, value in added.items():
        aliases.setdefault(name, value)
    if res.used_env:
        problems.append(Problem("ModelMux 1.x variables (deprecated): they now set the `vertex` "
                                "provider; `modelmux config migrate` writes them into the config "
                                "file",
                                origin=ValueOrigin("environment", name=", ".join(res.used_env)),
                                warning=True))
