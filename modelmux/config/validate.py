"""Validation that reports every problem at once: schema checks per key, then cross-field checks.

msgspec stops at the first error, so ``check_schema`` walks the schema itself: each table's
unknown and missing keys, each value converted on its own, tagged provider tables by ``type``.
``check_config`` looks across a decoded ``Config`` (duplicate names, shared models, ranges).
"""

from __future__ import annotations

import importlib.util
import os
import re
import types
import typing
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec

from modelmux.config import plugins
from modelmux.config.extras import INSTALL_HINT, missing_extra
from modelmux.config.features import JWT_ALGORITHMS
from modelmux.config.layers import ValueOrigins, origin_of
from modelmux.config.problems import KeyPath, Problem
from modelmux.config.providers import ProviderConfig
from modelmux.config.schema import Config
from modelmux.config.validate_spend import check_spend
from modelmux.config.validate_routing import (
    check_cache,
    check_routing,
    deployment_providers,
    group_names,
)

FALLBACK = "*"
_AT = re.compile(r" - at `\$(.*)`$")
_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def _strip(kind: Any) -> Any:
    return typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Annotated else kind


def _is_struct(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, msgspec.Struct)


def _tagged(kind: Any) -> tuple[Any, ...] | None:
    """The Struct members of a tagged union, else None."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        members = typing.get_args(kind)
        if members and all(_is_struct(m) and m.__struct_config__.tag for m in members):
            return members
    return None


def _message(exc: msgspec.ValidationError, path: KeyPath) -> tuple[str, KeyPath]:
    """msgspec's reason with its ``- at `$...``` suffix folded into the key path."""
    text = str(exc)
    match = _AT.search(text)
    if match:
        text = text[:match.start()]
        for name, index in _PART.findall(match.group(1)):
            path = (*path, int(index) if index else name)
    return text[:1].lower() + text[1:], path


def to_config(data: Mapping[str, Any]) -> Config:
    """The ``Config`` of validated raw data; a plugin type's ``[[provider]]`` table is decoded
    with its plugin's ``Config`` (loaded already by ``check_schema``)."""
    tables = data.get("provider") or []
    builtin = {m.__struct_config__.tag for m in typing.get_args(ProviderConfig)}
    theirs = {i: t for i, t in enumerate(tables) if t.get("type") not in builtin}
    if not theirs:
        return msgspec.convert(data, Config)
    mine = [t for i, t in enumerate(tables) if i not in theirs]
    config = msgspec.convert({**data, "provider": mine}, Config)
    built = iter(config.provider)
    merged = [msgspec.convert(theirs[i], plugins.provider_config(theirs[i]["type"]))
              if i in theirs else next(built) for i in range(len(tables))]
    return msgspec.structs.replace(config, provider=merged)


def check_schema(data: Mapping[str, Any], origins: ValueOrigins) -> list[Problem]:
    """Every schema problem in the merged raw config, each with its path and origin."""
    return _struct(data, Config, (), origins)


def _struct(value: Any, struct: Any, path: KeyPath, origins: ValueOrigins) -> list[Problem]:
    if not isinstance(value, dict):
        return [Problem(f"expected a table, got {_kind(value)}", path, origin_of(origins, path))]
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    tag_field = struct.__struct_config__.tag_field
    problems = []
    for key in value:
        if key in fields or key == tag_field:
            continue
        here = (*path, key)
        message = f"unknown field `{key}` (expected one of: {', '.join(fields)})"
        problems.append(Problem(message, here, origin_of(origins, here)))
    for name, info in fields.items():
        if name not in value:
            if info.required:
                problems.append(Problem(f"missing required field `{name}`", path,
                                        origin_of(origins, path)))
            continue
        problems += _value(value[name], info.type, (*path, name), origins)
    if not problems:
        try:
            to_config(value) if struct is Config else msgspec.convert(value, struct)
        except msgspec.ValidationError as exc:
            message, where = _message(exc, path)
            problems.append(Problem(message, where, origin_of(origins, where)))
    return problems


def _value(value: Any, kind: Any, path: KeyPath, origins: ValueOrigins) -> list[Problem]:
    bare = _strip(kind)
    if _is_struct(bare):
        return _struct(value, bare, path, origins)
    members = _tagged(bare)
    if members is not None:
        return _union(value, members, path, origins)
    if typing.get_origin(bare) is list:
        item = _strip(typing.get_args(bare)[0])
        if (_is_struct(item) or _tagged(item)) and isinstance(value, list):
            return [p for i, v in enumerate(value) for p in _value(v, item, (*path, i), origins)]
    if typing.get_origin(bare) in (typing.Union, types.UnionType) and value is not None:
        options = [m for m in typing.get_args(bare) if m is not type(None)]
        if len(options) == 1:
            return _value(value, options[0], path, origins)
    if typing.get_origin(bare) is typing.Literal and isinstance(value, str):
        choices = typing.get_args(bare)
        if value not in choices:
            return [Problem(f"expected one of {', '.join(map(str, choices))}, got {value!r}", path,
                            origin_of(origins, path))]
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        message, where = _message(exc, path)
        return [Problem(message, where, origin_of(origins, where))]
    return []


def _union(value: Any, members: tuple[Any, ...], path: KeyPath,
           origins: ValueOrigins) -> list[Problem]:
    tag_field = members[0].__struct_config__.tag_field
    tags = {m.__struct_config__.tag: m for m in members}
    if not isinstance(value, dict):
        return [Problem(f"expected a table, got {_kind(value)}", path, origin_of(origins, path))]
    tag = value.get(tag_field)
    if tag in tags:
        return _struct(value, tags[tag], path, origins)
    here = (*path, tag_field) if tag_field in value else path
    if path[:1] == ("provider",) and isinstance(tag, str):
        return _plugin_provider(value, tag, tuple(tags), path, origins)
    got = "missing" if tag is None else f"got {tag!r}"
    return [Problem(f"`{tag_field}` must be one of {', '.join(map(str, tags))} ({got})", here,
                    origin_of(origins, here))]


def _plugin_provider(value: dict[str, Any], tag: str, builtin: tuple[str, ...], path: KeyPath,
                     origins: ValueOrigins) -> list[Problem]:
    """A ``[[provider]]`` of a type no built-in has: checked against its plugin's ``Config``."""
    here = (*path, "type")
    if tag not in plugins.installed(plugins.PROVIDER_GROUP):
        names = ", ".join(plugins.installed(plugins.PROVIDER_GROUP)) or "none"
        message = (f"`type` must be one of {', '.join(builtin)}, or the name of an installed "
                   f"provider plugin ({plugins.PROVIDER_GROUP} entry points: {names}) "
                   f"(got {tag!r})")
        return [Problem(message, here, origin_of(origins, here))]
    try:
        config = plugins.provider_config(tag)
    except plugins.PluginError as exc:
        return [Problem(str(exc), here, origin_of(origins, here))]
    return _struct(value, config, path, origins)


def _int(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _aliases(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    models = data.get("models")
    if not isinstance(models, dict):
        return []
    out = []
    for name, alias in models.items():
        target = alias.get("target") if isinstance(alias, dict) else alias
        if isinstance(target, str):
            out.append((name, target))
    return out


def check_config(data: Mapping[str, Any], origins: ValueOrigins) -> list[Problem]:
    """Cross-field problems (errors) and warnings; works on raw data, so it runs even when
    ``check_schema`` found problems (values of the wrong type are skipped here)."""
    problems: list[Problem] = []

    def add(message: str, path: KeyPath, warning: bool = False) -> None:
        problems.append(Problem(message, path, origin_of(origins, path), warning))

    raw_server, raw_providers = data.get("server"), data.get("provider")
    server: dict[str, Any] = raw_server if isinstance(raw_server, dict) else {}
    port: Any = server.get("port")
    if _int(port) and not 0 <= port <= 65535:
        add(f"expected a port in 0-65535 (0 picks a free port), got {port}", ("server", "port"))
    for key in ("workers", "max_head_bytes", "max_body_bytes", "max_connections"):
        if _int(server.get(key)) and server[key] < 1:
            add(f"expected a number >= 1, got {server[key]}", ("server", key))
    for key in ("header_timeout", "body_timeout", "keepalive_timeout", "drain_timeout"):
        if _int(server.get(key)) and server[key] <= 0:
            add(f"expected seconds > 0, got {server[key]}", ("server", key))
    providers: list[Any] = raw_providers if isinstance(raw_providers, list) else []
    aliases = _aliases(data)
    targets = {target.partition("/")[0] for _, target in aliases} | deployment_providers(data)
    names: dict[str, int] = {}
    owner: dict[str, int] = {}
    for index, provider in enumerate(providers):
        if not isinstance(provider, dict):
            continue
        here: KeyPath = ("provider", index)
        name: Any = provider.get("name")
        if isinstance(name, str):
            if not name.strip() or "/" in name:
                add("a provider name must be non-empty and contain no `/`", (*here, "name"))
            if name in names:
                add(f"duplicate provider name `{name}` (also provider[{names[name]}])",
                    (*here, "name"))
            names.setdefault(name, index)
        models = provider.get("models")
        if not isinstance(models, list):
            continue
        if not models and name not in targets:
            add("empty: list the models this provider serves (or point a [models] alias or a "
                "[[routing.group]] deployment at it)",
                (*here, "models"))
        for number, model in enumerate(models):
            if not isinstance(model, str):
                continue
            first = owner.setdefault(model, index)
            if first != index:
                add(f"model `{model}` is also listed by provider[{first}]: requests for it go "
                    "there (the first listing wins)", (*here, "models", number), warning=True)
    grouped = group_names(data)
    for name, target in aliases:
        provider_name, slash, upstream = target.partition("/")
        if not ((slash and provider_name in names and upstream) or target in owner
                or target in grouped):
            add(f"target `{target}` matches no provider: expected `provider/model`, a model a "
                "provider lists or a [[routing.group]]", ("models", name))
        elif name in owner and name != FALLBACK:
            add(f"alias `{name}` hides the model of that name listed by provider[{owner[name]}]",
                ("models", name), warning=True)
    for message, path, warning in _tokenizers(providers):
        add(message, path, warning)
    problems += check_routing(data, origins, names, owner)
    problems += check_cache(data, origins)
    problems += _middleware(data.get("middleware"), origins)
    problems += check_spend(data, origins)
    if not providers:
        add("no [[provider]] configured: every chat request will get 404", (), warning=True)
    logging = data.get("logging")
    if isinstance(logging, dict) and logging.get("debug_bodies") is True \
            and logging.get("level") not in ("debug", "trace"):
        add("debug_bodies = true logs bodies at DEBUG only: set level = \"debug\" too, or "
            "nothing is logged", ("logging", "debug_bodies"), warning=True)
    telemetry = data.get("telemetry")
    if isinstance(telemetry, dict):
        for message, key in _telemetry(telemetry):
            add(message, ("telemetry", *key))
    auth = data.get("auth")
    jwt = auth.get("jwt") if isinstance(auth, dict) else None
    if isinstance(jwt, dict):
        algorithms = jwt.get("algorithms", ["RS256"])
        found = jwt_problem(jwt.get("jwks_url"), jwt.get("jwks_file"),
                            algorithms if isinstance(algorithms, list) else ["RS256"])
        if found is None and not _importable("jwt"):
            found = ("JWTs need the jwt extra: the PyJWT package is not installed (pip "
                     "install 'modelmux[jwt]')"), ()
        if found is not None:
            add(found[0], ("auth", "jwt", *found[1]))
    state = data.get("state")
    cache = data.get("cache")
    if isinstance(cache, dict) and cache.get("enabled") is True \
            and cache.get("backend") == "redis" and not _importable("redis"):
        add("backend = \"redis\" needs the redis extra: the redis package is not installed "
            "(pip install 'modelmux[redis]')", ("cache", "backend"))
    if isinstance(state, dict) and state.get("backend") == "redis" and not _importable("redis"):
        add("backend = \"redis\" needs the redis extra: the redis package is not installed "
            "(pip install 'modelmux[redis]')", ("state", "backend"))
    for message, name in _auth_store(data.get("auth")):
        add(message, ("auth", name))
    return problems


def jwt_problem(url: object, file: object, algorithms: list[Any]) -> tuple[str, KeyPath] | None:
    """What is wrong with ``[auth.jwt]``'s key source and algorithms (message, key), if
    anything: exactly one of ``jwks_url`` (http or https) and ``jwks_file``; only public-key
    algorithms."""
    if (url is None) == (file is None):
        return "needs exactly one of jwks_url and jwks_file", ()
    if isinstance(url, str) and not url.startswith(("https://", "http://")):
        return f"expected an http(s) URL, got {url[:80]!r}", ("jwks_url",)
    wrong = [str(a) for a in algorithms if a not in JWT_ALGORITHMS]
    if wrong or not algorithms:
        listed = ", ".join(sorted(JWT_ALGORITHMS))
        return (f"algorithms may list only {listed} (public-key signatures); got "
                f"{', '.join(wrong) or 'none'}"), ("algorithms",)
    return None


def _auth_store(auth: Any) -> list[tuple[str, str]]:
    """``[auth] store = "postgres"``: a DSN, and the ``postgres`` extra installed."""
    if not (isinstance(auth, dict) and auth.get("store") == "postgres"):
        return []
    out = []
    if not auth.get("postgres_dsn"):
        out.append(('store = "postgres" needs postgres_dsn (postgresql://user@host/db)',
                    "postgres_dsn"))
    if not _importable("asyncpg"):
        out.append(('store = "postgres" needs the postgres extra: the asyncpg package is not '
                    "installed (pip install 'modelmux[postgres]')", "store"))
    return out


def _middleware(tables: Any, origins: ValueOrigins) -> list[Problem]:
    """Each enabled ``[[middleware]]`` names a plugin that is installed and imports."""
    problems = []
    for index, table in enumerate(tables if isinstance(tables, list) else ()):
        name = table.get("name") if isinstance(table, dict) else None
        if not isinstance(name, str) or table.get("enabled") is False:
            continue
        try:
            plugins.load(plugins.MIDDLEWARE_GROUP, name)
        except plugins.PluginError as exc:
            here: KeyPath = ("middleware", index, "name")
            problems.append(Problem(str(exc), here, origin_of(origins, here)))
    return problems


def _tokenizers(providers: list[Any]) -> list[tuple[str, KeyPath, bool]]:
    """Each ``tokenizer`` file is readable (read fully only on first count: it may be large),
    a table names listed models (a warning), and the ``tokenizers`` extra is installed."""
    out: list[tuple[str, KeyPath, bool]] = []
    for index, provider in enumerate(providers):
        named = provider.get("tokenizer") if isinstance(provider, dict) else None
        files: list[tuple[Any, KeyPath]] = [(named, ())] if isinstance(named, str) else []
        if isinstance(named, dict):
            files = [(path, (model,)) for model, path in named.items()]
            models = provider.get("models")
            out += [((f"no model `{model}` in this provider's models: its tokenizer is "
                      "never used"), ("provider", index, "tokenizer", model), True)
                    for model in named if isinstance(models, list) and model not in models]
        for path, key in files:
            if not isinstance(path, str):
                continue
            where: KeyPath = ("provider", index, "tokenizer", *key)
            try:
                with open(os.path.expanduser(path), "rb"):
                    pass
            except OSError as exc:
                out.append((f"cannot read tokenizer file {path!r}: {exc.strerror or exc}",
                            where, False))
            if not _importable("tokenizers"):
                out.append((("tokenizer needs the tokenizers extra: the tokenizers package "
                             "is not installed (pip install 'modelmux[tokenizers]')"), where,
                            False))
    return out


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def _telemetry(table: Mapping[str, Any]) -> list[tuple[str, KeyPath]]:
    """``[telemetry]``: an http(s) endpoint, and the ``otel`` extra installed when enabled."""
    out: list[tuple[str, KeyPath]] = []
    endpoint = table.get("endpoint")
    if isinstance(endpoint, str):
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            out.append(((f"expected an http:// or https:// URL of the OTLP/HTTP traces "
                         f"receiver, got {endpoint!r}"), ("endpoint",)))
    if table.get("enabled") is True:
        missing = missing_extra()
        if missing is not None:
            out.append(((f"tracing needs the otel extra: {missing} is not installed "
                         f"({INSTALL_HINT})"), ("enabled",)))
    return out
