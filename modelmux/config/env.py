"""The environment as config layers, and ``${VAR}``/``~`` expansion of config strings.

``MODELMUX_<SECTION>_<KEY>`` (``MODELMUX_SERVER_PORT``, ``MODELMUX_STREAMING_MODE``,
``MODELMUX_AUTH_JWT_ISSUER``) sits above the files; 1.x's plain names (``PORT``, ``HOST``, ``LOG_LEVEL``, ...) sit below them, as 1.3.5
let a file win over them. The 1.x Vertex variables (``VERTEX_*``, ``LLM_*``) are read by
``modelmux.config.migrate``, which keeps 1.x's own precedence for them.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from modelmux.config.features import AuthConfig, MetricsConfig
from modelmux.config.layers import Layer, ValueOrigins, origin_of, set_value
from modelmux.config.paths import expand_user
from modelmux.config.problems import KeyPath, Problem, ValueOrigin
from modelmux.config.schema import LoggingConfig, ServerConfig, StreamingConfig, TelemetryConfig
from modelmux.config.state import StateConfig

PREFIX = "MODELMUX_"
SECTIONS: dict[str, type[msgspec.Struct]] = {
    "server": ServerConfig, "streaming": StreamingConfig, "logging": LoggingConfig,
    "telemetry": TelemetryConfig, "state": StateConfig, "auth": AuthConfig,
    "metrics": MetricsConfig,
}
_TRUE = {"true", "yes", "1", "on", "enabled"}
_FALSE = {"false", "no", "0", "off", "disabled"}
_SYNONYMS: dict[KeyPath, dict[str, str]] = {
    ("logging", "level"): {"warning": "warn"},
    ("streaming", "mode"): {"false": "never", "no": "never", "non-streaming": "never",
                            "nonstreaming": "never", "none": "never", "normal": "standard",
                            "std": "standard", "buffer": "buffered", "true": "always",
                            "yes": "always"},
}
LEGACY_ENV_PATHS: dict[str, KeyPath] = {
    "MODELMUX_SERVER_LOG_LEVEL": ("logging", "level"),
    "MODELMUX_SERVER_ENABLE_RETRIES": ("_legacy", "server", "enable_retries"),
    "MODELMUX_SERVER_MAX_RETRY_ATTEMPTS": ("_legacy", "server", "max_retry_attempts"),
    "MODELMUX_AUTH_SERVICE_ACCOUNT_FILE": ("_legacy", "auth", "service_account_file"),
    "MODELMUX_AUTH_SERVICE_ACCOUNT_JSON": ("_legacy", "auth", "service_account_json"),
}
"""1.x ``MODELMUX_*`` names whose key moved in 2.x; they keep working, with a warning."""
NOT_SETTINGS: frozenset[str] = frozenset({
    "MODELMUX_PURE_PYTHON", "MODELMUX_REQUIRE_NATIVE",  # native or pure build (modelmux._accel)
    "MODELMUX_HEALTHCHECK_URL",  # the container image's HEALTHCHECK
    "MODELMUX_MASTER_KEY",  # read as ${MODELMUX_MASTER_KEY} by [auth] master_key; the CLI's admin key
})
"""``MODELMUX_*`` variables ModelMux reads that are not settings: no warning for them."""
PLAIN_ENV_PATHS: dict[str, KeyPath] = {
    "HOST": ("server", "host"),
    "PORT": ("server", "port"),
    "LOG_LEVEL": ("logging", "level"),
    "STREAMING_MODE": ("streaming", "mode"),
    "ENABLE_RETRIES": ("_legacy", "server", "enable_retries"),
    "MAX_RETRY_ATTEMPTS": ("_legacy", "server", "max_retry_attempts"),
    "GCP_SERVICE_ACCOUNT_KEY": ("_legacy", "auth", "service_account_key_env"),
}
"""1.x's unprefixed variables (documented by 1.x, some dead in 1.3.5), below the files."""
_LEGACY_TYPES: dict[KeyPath, Any] = {
    ("_legacy", "server", "enable_retries"): bool,
    ("_legacy", "server", "max_retry_attempts"): int,
    ("_legacy", "auth", "service_account_file"): str,
    ("_legacy", "auth", "service_account_json"): str,
    ("_legacy", "auth", "service_account_key_env"): str,
}


def env_names() -> dict[str, tuple[KeyPath, Any]]:
    """``MODELMUX_*`` variable → (key path, annotated type), for every scalar/list setting."""
    names: dict[str, tuple[KeyPath, Any]] = {}

    def visit(struct: type[msgspec.Struct], path: KeyPath) -> None:
        for info in msgspec.structs.fields(struct):
            here = (*path, info.encode_name)
            kind = info.type
            table = [a for a in typing.get_args(kind) if a is not type(None)]
            if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(table) == 1:
                kind = table[0]  # an optional table ([auth.jwt]): its keys, one by one
            if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
                visit(kind, here)
            elif typing.get_origin(kind) is not dict:
                names[PREFIX + "_".join(str(p) for p in here).upper()] = (here, kind)

    for section, struct in SECTIONS.items():
        visit(struct, (section,))
    return names


def parse_value(raw: str, kind: Any, path: KeyPath) -> Any:
    """An environment string as the setting's type (1.x's words for booleans and enums).

    Raises:
        ValueError: the text is not a value of that type; the message says what was expected.
    """
    if typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    args = typing.get_args(kind)
    if type(None) in args:
        if not raw.strip():
            return None
        kind = next(a for a in args if a is not type(None))
    text = raw.strip()
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"expected a boolean (true/false, yes/no, 1/0, on/off), got {raw!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    if typing.get_origin(kind) is typing.Literal:
        word = text.lower()
        word = _SYNONYMS.get(path, {}).get(word, word)
        if word in args:
            return word
        raise ValueError(f"expected one of {', '.join(map(str, args))}, got {raw!r}")
    if typing.get_origin(kind) is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def environment_layer(environ: Mapping[str, str],
                      referenced: Collection[str] = ()) -> tuple[Layer, list[Problem]]:
    """The ``MODELMUX_*`` layer, and its problems (bad values are errors, odd names warnings).

    A name that is no setting warns, unless ModelMux reads it otherwise (``NOT_SETTINGS``) or a
    config file asks for it as ``${NAME}`` (``referenced``).
    """
    layer = Layer("environment", {})
    problems: list[Problem] = []
    names = env_names()
    for name in sorted(environ):
        if not name.startswith(PREFIX):
            continue
        origin = ValueOrigin("environment", name=name)
        section = name[len(PREFIX):].split("_", 1)[0].lower()
        if name in names:
            path, kind = names[name]
        elif name in LEGACY_ENV_PATHS:
            path = LEGACY_ENV_PATHS[name]
            kind = _LEGACY_TYPES.get(path) or typing.get_type_hints(LoggingConfig)["level"]
            better = "MODELMUX_LOGGING_LEVEL" if path == ("logging", "level") else \
                "`modelmux config migrate` folds it into the config file"
            problems.append(Problem(f"a ModelMux 1.x name (deprecated, still works): {better}",
                                    origin=origin, warning=True))
        elif name.startswith(PREFIX + "LLM_PROVIDER"):
            problems.append(Problem("ignored (as in 1.x): the provider is configured in "
                                    "[[provider]] tables", origin=origin, warning=True))
            continue
        elif section in (*SECTIONS, "auth"):
            known = [n for n in (*names, *LEGACY_ENV_PATHS) if n.startswith(f"{PREFIX}{section.upper()}_")]
            problems.append(Problem(f"unknown setting; ignored (known: {', '.join(known)})",
                                    origin=origin, warning=True))
            continue
        else:
            if name not in NOT_SETTINGS and name not in referenced:
                problems.append(Problem(_not_a_setting(name, section, names), origin=origin,
                                        warning=True))
            continue
        try:
            value = parse_value(environ[name], kind, path)
        except ValueError as exc:
            problems.append(Problem(str(exc), path, origin))
            continue
        set_value(layer, path, value, origin)
    return layer, problems


def _not_a_setting(name: str, section: str, names: Collection[str]) -> str:
    if section == "routing":
        return "not a ModelMux setting; ignored (routing is configured in files only)"
    likely = difflib.get_close_matches(name, [*names, *LEGACY_ENV_PATHS, *NOT_SETTINGS], n=1)
    hint = f"did you mean {likely[0]}?" if likely else \
        f"settings are MODELMUX_<SECTION>_<KEY>, sections: {', '.join(SECTIONS)}"
    return f"not a ModelMux setting; ignored ({hint})"


def plain_environment_layer(environ: Mapping[str, str]) -> tuple[Layer, list[Problem]]:
    """1.x's unprefixed variables as the layer just above the defaults; bad values are ignored."""
    layer = Layer("1.x environment", {})
    problems: list[Problem] = []
    hints = typing.get_type_hints
    kinds: dict[KeyPath, Any] = {
        ("server", "host"): str, ("server", "port"): int,
        ("logging", "level"): hints(LoggingConfig)["level"],
        ("streaming", "mode"): hints(StreamingConfig)["mode"], **_LEGACY_TYPES,
    }
    for name, path in PLAIN_ENV_PATHS.items():
        raw = environ.get(name)
        if raw is None:
            continue
        origin = ValueOrigin("environment", name=name)
        if path[-1] == "service_account_key_env":
            set_value(layer, path, name, origin)
            continue
        try:
            value = parse_value(raw, kinds[path], path)
        except ValueError as exc:
            problems.append(Problem(f"{exc}; ignored (1.x variable)", origin=origin, warning=True))
            continue
        set_value(layer, path, value, origin)
    return layer, problems


_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def references(data: Any) -> set[str]:
    """Every ``NAME`` a string in ``data`` refers to as ``${NAME}``."""
    if isinstance(data, str):
        return set(_REFERENCE.findall(data))
    items = data.values() if isinstance(data, dict) else data if isinstance(data, list) else ()
    return set().union(*map(references, items))


def expand_strings(data: Any, origins: ValueOrigins, environ: Mapping[str, str],
                   path: KeyPath = ()) -> list[Problem]:
    """Replace ``${VAR}`` and a leading ``~`` in every string of ``data``, in place.

    Returns one problem per missing variable, naming it and the setting that wanted it.
    """
    problems: list[Problem] = []

    def expand(value: str, where: KeyPath) -> str:
        def substitute(match: re.Match[str]) -> str:
            found = environ.get(match.group(1))
            if found is None:
                problems.append(Problem(
                    f"environment variable {match.group(1)} is not set (from ${{{match.group(1)}}})",
                    where, origin_of(origins, where)))
                return match.group(0)
            return found

        return expand_user(_REFERENCE.sub(substitute, value), environ)

    keys: list[Any] = list(data) if isinstance(data, dict) else list(range(len(data)))
    for key in keys:
        value, where = data[key], (*path, key)
        if isinstance(value, str):
            data[key] = expand(value, where)
        elif isinstance(value, (dict, list)):
            problems.extend(expand_strings(value, origins, environ, where))
    return problems
