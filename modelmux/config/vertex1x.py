"""1.x's Vertex model resolution (1.x spec §3.3–3.5): ``[vertex]``, ``[[vertex.models]]``, env.

Turns a 1.x ``[vertex]`` table and the ``LLM_*``/``VERTEX_*`` variables into ``VertexTarget``s
(project, region, host, model) with 1.x's precedence: ``[vertex] url`` > ``LLM_URL`` > complete
``[vertex]`` fields > complete ``VERTEX_*``. Region picks the host, location the path; in 2.x the
provider's ``region`` is the location and ``base_url`` the host when the two differ.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelmux.config.layers import ValueOrigins, origin_of
from modelmux.config.problems import KeyPath, Problem, ValueOrigin

VERTEX_ENV = ("VERTEX_PROJECT", "VERTEX_REGION", "VERTEX_LOCATION", "VERTEX_PUBLISHER",
              "VERTEX_MODEL_ID")
_FIELDS = ("project", "region", "location", "publisher", "model")
_ALIASES = {"project": "project_id", "model": "model_id"}
_SUFFIX = re.compile(r"(?::(?:rawPredict|streamRawPredict))+$")
_URL = re.compile(r"(https?://[^/\s]+)/(v1[a-z0-9]*)/projects/([^/]+)/locations/([^/]+)"
                  r"/publishers/([^/]+)/models/([^/]+)")
_HOST = re.compile(r"(https?://[^/\s]+)/")
VERTEX_KEYS = {"project", "project_id", "region", "location", "publisher", "model", "model_id",
               "url", "models"}
ENTRY_KEYS = {"name", "model", "model_id", "project", "region", "location", "publisher", "url"}


def host_origin(region: str) -> str:
    """1.x §3.1: ``global`` → ``aiplatform.googleapis.com``, else ``<region>-aiplatform...``."""
    region = region.strip()
    if region.lower() == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{region}-aiplatform.googleapis.com"


def strip_method(url: str) -> str:
    """A user-supplied URL without whitespace and trailing ``:rawPredict``/``:streamRawPredict``."""
    return _SUFFIX.sub("", url.strip())


def display_name(model_id: str) -> str:
    """1.x §3.4: the public name of a model id is the part before ``@``."""
    return model_id.split("@", 1)[0]


@dataclass(frozen=True)
class VertexTarget:
    """One Vertex model as a 2.x ``vertex`` provider sees it."""

    project: str
    region: str
    base_url: str | None
    model: str
    publisher: str = "anthropic"
    origin: ValueOrigin | None = None
    origins: Mapping[str, ValueOrigin] = field(default_factory=dict)

    @property
    def group(self) -> tuple[str, str, str | None]:
        return self.project, self.region, self.base_url


def _target(origin: str, project: str, location: str, publisher: str, model: str,
            where: ValueOrigin | None, origins: Mapping[str, ValueOrigin]) -> VertexTarget:
    location = location.strip().lower()
    base = None if origin.lower() == host_origin(location).lower() else origin
    return VertexTarget(project.strip(), location, base, model.strip(), publisher.strip(),
                        where, origins)


def parse_url(url: str, where: ValueOrigin | None, path: KeyPath) -> tuple[VertexTarget | None,
                                                                        list[Problem]]:
    """A full 1.x resource URL split into a target (``None`` and a problem when unparseable)."""
    match = _URL.fullmatch(strip_method(url))
    if match is None:
        return None, [Problem("expected a Vertex model URL like https://<region>-aiplatform."
                              "googleapis.com/v1/projects/<project>/locations/<location>/"
                              f"publishers/<publisher>/models/<model>, got {url!r}", path, where)]
    origin, version, project, location, publisher, model = match.groups()
    problems = []
    if version != "v1":
        problems.append(Problem(f"API version {version} is served as v1 by ModelMux 2", path,
                                where, warning=True))
    named = {key: where for key in ("project", "region", "base_url", "model") if where}
    return _target(origin, project, location, publisher, model, where, named), problems


@dataclass
class Resolution:
    """What 1.x would have served: the default model, its display name and the named models."""

    default: VertexTarget | None = None
    display: str | None = None
    display_origin: ValueOrigin | None = None
    entries: list[tuple[str, VertexTarget | None, KeyPath]] = field(default_factory=list)
    used_env: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _text(table: Mapping[str, Any], key: str) -> tuple[str | None, str]:
    """The string at ``key`` (or its 1.x alias) and the key it was found under."""
    for name in (key, _ALIASES.get(key)):
        if name is not None and name in table:
            value = table[name]
            return (value if isinstance(value, str) else None), name
    return None, key


def resolve(vertex: Mapping[str, Any] | None, vpath: KeyPath, origins: ValueOrigins,
            environ: Mapping[str, str], use_env: bool = True) -> Resolution:
    """Resolve the default model and every ``[[vertex.models]]`` entry as 1.x did."""
    out = Resolution()
    table: Mapping[str, Any] = vertex or {}
    for key, value in table.items():
        here = (*vpath, key)
        if key not in VERTEX_KEYS:
            out.problems.append(Problem("unknown key; ignored (as in 1.x)", here,
                                        origin_of(origins, here), warning=True))
        elif key != "models" and not isinstance(value, str):
            out.problems.append(Problem(f"expected a string, got {type(value).__name__}", here,
                                        origin_of(origins, here)))

    def at(key: str) -> ValueOrigin | None:
        return origin_of(origins, (*vpath, _text(table, key)[1]))

    env = {name: environ[name] for name in ("LLM_URL", "LLM_MODEL_DISPLAY_NAME", "LLM_MODEL",
                                            *VERTEX_ENV) if use_env and name in environ}
    fields = {key: (_text(table, key)[0] or "").strip() for key in _FIELDS}
    url = (_text(table, "url")[0] or "").strip()
    tail = ""
    if url:
        out.default, problems = parse_url(url, at("url"), (*vpath, "url"))
        out.problems += problems
        tail = strip_method(url).rsplit("/", 1)[-1]
        fallback_name = fields["model"] or tail
    elif env.get("LLM_URL", "").strip():
        where = ValueOrigin("environment", name="LLM_URL")
        out.default, problems = parse_url(env["LLM_URL"], where, ())
        out.problems += problems
        out.used_env.append("LLM_URL")
        fallback_name = strip_method(env["LLM_URL"]).rsplit("/", 1)[-1]
    elif all(fields.values()):
        named = {"project": at("project"), "region": at("location"), "base_url": at("region"),
                 "model": at("model")}
        out.default = _target(host_origin(fields["region"]), fields["project"],
                              fields["location"], fields["publisher"], fields["model"],
                              origin_of(origins, vpath), {k: o for k, o in named.items() if o})
        fallback_name = fields["model"]
    elif all(name in env for name in VERTEX_ENV):
        values = {name: env[name].strip() for name in VERTEX_ENV}
        out.used_env += VERTEX_ENV
        empty = [name for name, value in values.items() if not value]
        if empty:
            out.problems.append(Problem(f"{', '.join(empty)} set but empty",
                                        origin=ValueOrigin("environment", name="VERTEX_*")))
        else:
            variables = {"project": "VERTEX_PROJECT", "region": "VERTEX_LOCATION",
                         "base_url": "VERTEX_REGION", "model": "VERTEX_MODEL_ID"}
            out.default = _target(host_origin(values["VERTEX_REGION"]), values["VERTEX_PROJECT"],
                                  values["VERTEX_LOCATION"], values["VERTEX_PUBLISHER"],
                                  values["VERTEX_MODEL_ID"],
                                  ValueOrigin("environment", name="VERTEX_*"),
                                  {k: ValueOrigin("environment", name=v)
                                   for k, v in variables.items()})
        fallback_name = values["VERTEX_MODEL_ID"]
    else:
        fallback_name = ""
    for name in ("LLM_MODEL_DISPLAY_NAME", "LLM_MODEL"):
        if env.get(name, "").strip():
            out.display = env[name].strip()
            out.display_origin = ValueOrigin("environment", name=name)
            out.used_env.append(name)
            break
    else:
        if fallback_name:
            out.display = display_name(fallback_name)
            out.display_origin = out.default.origin if out.default else None
    _entries(out, table, vpath, origins, fields, url)
    return out


def _entries(out: Resolution, table: Mapping[str, Any], vpath: KeyPath, origins: ValueOrigins,
             parent: Mapping[str, str], parent_url: str) -> None:
    """1.x §3.5: each ``[[vertex.models]]`` entry → a target, or None for "the default model"."""
    entries = table.get("models", [])
    if not isinstance(entries, list):
        out.problems.append(Problem("expected an array of tables [[vertex.models]]",
                                    (*vpath, "models"), origin_of(origins, (*vpath, "models"))))
        return
    for index, entry in enumerate(entries):
        path = (*vpath, "models", index)
        where = origin_of(origins, path)
        if not isinstance(entry, dict):
            out.problems.append(Problem("expected a table", path, where))
            continue
        for key, value in entry.items():
            if key not in ENTRY_KEYS:
                out.problems.append(Problem("unknown key; ignored (as in 1.x)", (*path, key),
                                            origin_of(origins, (*path, key)), warning=True))
            elif not isinstance(value, str):
                out.problems.append(Problem(f"expected a string, got {type(value).__name__}",
                                            (*path, key), origin_of(origins, (*path, key))))
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            out.problems.append(Problem("missing required field `name`", path, where))
            continue
        if "url" in entry:
            url = entry["url"] if isinstance(entry["url"], str) else ""
            if not url.strip():
                out.problems.append(Problem("url is empty", (*path, "url"), where))
                continue
            target, problems = parse_url(url, origin_of(origins, (*path, "url")), (*path, "url"))
            out.problems += problems
            out.entries.append((name, target, path))
            continue
        values = {key: (_text(entry, key)[0] if _text(entry, key)[1] in entry else parent[key])
                  for key in _FIELDS if key != "model"}
        model = (_text(entry, "model")[0] or "").strip()
        missing = [k for k in ("project", "location", "publisher") if not (values[k] or "").strip()]
        missing += [] if model else ["model"]
        origin: str | None = None
        if not missing:
            if (values["region"] or "").strip():
                origin = host_origin(values["region"] or "")
            elif parent_url:
                host = _HOST.match(strip_method(parent_url))
                origin = host.group(1) if host else None
        if missing or origin is None:
            why = f"{', '.join(missing)} empty" if missing else "no region and no [vertex] url"
            out.problems.append(Problem(f"{why}: `{name}` falls back to the default model "
                                        "(as in 1.x)", path, where, warning=True))
            out.entries.append((name, None, path))
            continue
        named = {key: o for key in ("project", "region", "model")
                 if (o := origin_of(origins, (*path, key))) is not None}
        out.entries.append((name, _target(origin, values["project"] or "",
                                          values["location"] or "", values["publisher"] or "",
                                          model, where, named), path))
