"""Cross-field checks of ``[routing]`` (groups, deployments, fallback groups, rules) and of
``[[cache.rules]]``.

Works on the raw merged data, like ``validate.check_config``, so it runs even when the schema
check found problems (values of the wrong type are skipped). Each rule's ``when`` is compiled
here, so a syntax or type error is a config problem naming its column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelmux.config.layers import ValueOrigins, origin_of
from modelmux.config.problems import KeyPath, Problem, format_path
from modelmux.rules.compiler import RuleError, compile_rule

LIMIT_KEYS = ("rpm", "tpm", "max_concurrent")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _routing(data: Mapping[str, Any]) -> dict[str, Any]:
    routing = data.get("routing")
    return routing if isinstance(routing, dict) else {}


def group_names(data: Mapping[str, Any]) -> set[str]:
    """Every public name a ``[[routing.group]]`` claims: its ``name`` and its ``aliases``."""
    names: set[str] = set()
    for group in _list(_routing(data).get("group")):
        if isinstance(group, dict):
            names.update(n for n in [group.get("name"), *_list(group.get("aliases"))]
                         if isinstance(n, str))
    return names


def deployment_providers(data: Mapping[str, Any]) -> set[str]:
    """The providers some ``[[routing.group]]`` deployment names."""
    return {d["provider"] for g in _list(_routing(data).get("group")) if isinstance(g, dict)
            for d in _list(g.get("deployments"))
            if isinstance(d, dict) and isinstance(d.get("provider"), str)}


def check_routing(data: Mapping[str, Any], origins: ValueOrigins, providers: Mapping[str, int],
                  listed: Mapping[str, int]) -> list[Problem]:
    """Problems in ``[routing]``; ``providers`` and ``listed`` are the provider names and the
    models providers list (each to its provider's index)."""
    problems: list[Problem] = []

    def add(message: str, path: KeyPath, warning: bool = False) -> None:
        problems.append(Problem(message, path, origin_of(origins, path), warning))

    routing = _routing(data)
    claimed: dict[str, KeyPath] = {}
    limits: dict[str, tuple[tuple[Any, ...], KeyPath]] = {}
    groups = [(i, g) for i, g in enumerate(_list(routing.get("group"))) if isinstance(g, dict)]
    for index, group in groups:
        here: KeyPath = ("routing", "group", index)
        names: list[tuple[KeyPath, Any]] = [((*here, "name"), group.get("name"))]
        names += [((*here, "aliases", n), a) for n, a in enumerate(_list(group.get("aliases")))]
        for where, name in names:
            if not isinstance(name, str):
                continue
            if not name.strip() or name == "*":
                add("a group name must be non-empty and not `*`", where)
            elif name in claimed:
                add(f"`{name}` is already a group name or alias (at "
                    f"{format_path(claimed[name])})", where)
            claimed.setdefault(name, where)
        for number, deployment in enumerate(_list(group.get("deployments"))):
            if not isinstance(deployment, dict):
                continue
            at: KeyPath = (*here, "deployments", number)
            provider = deployment.get("provider")
            if isinstance(provider, str) and provider not in providers:
                known = ", ".join(providers) or "none configured"
                add(f"unknown provider `{provider}` (providers: {known})", (*at, "provider"))
            model = deployment.get("model", group.get("name"))
            if isinstance(provider, str) and isinstance(model, str):
                ident = f"{provider}/{model}"
                mine = tuple(deployment.get(k) for k in LIMIT_KEYS)
                first = limits.setdefault(ident, (mine, at))
                if first[0] != mine:
                    add(f"deployment `{ident}` is also at {format_path(first[1])} with other limits "
                        "(rpm, tpm, max_concurrent): one upstream has one set of limits", at)
            for message in _split_warnings(deployment, _workers(data)):
                add(message, at, warning=True)
        if "deployments" in group and not _list(group.get("deployments")):
            add("empty: a group needs at least one deployment", (*here, "deployments"))
        strategy = group.get("strategy") or routing.get("strategy")
        need = {t for t in _list(group.get("tags")) if isinstance(t, str)}
        if strategy == "model_specific" and not any(
                isinstance(d, dict) and need <= set(_list(d.get("tags")))
                for d in _list(group.get("deployments"))):
            add(f"strategy model_specific: no deployment carries every tag of "
                f"{sorted(need)}, so the group could serve nothing", (*here, "tags"))
    known_groups = set(claimed) | set(listed)
    for index, group in groups:
        target = group.get("fallback_group")
        if not isinstance(target, str):
            continue
        where = ("routing", "group", index, "fallback_group")
        if target == group.get("name") or target in _list(group.get("aliases")):
            add("a group cannot fall back to itself", where)
        elif target not in known_groups:
            add(f"unknown group `{target}` (expected a [[routing.group]] name or alias, or a "
                "model a provider lists)", where)
    for index, rule in enumerate(_list(routing.get("rules"))):
        if isinstance(rule, dict):
            problems += _rule(rule, ("routing", "rules", index), origins, providers, known_groups)
    return problems


def _workers(data: Mapping[str, Any]) -> int:
    """How many processes split each limit: ``server.workers`` with the memory backend, else 1
    (Redis holds each limit whole)."""
    server, state = data.get("server"), data.get("state")
    backend = state.get("backend", "memory") if isinstance(state, dict) else "memory"
    workers = server.get("workers", 1) if isinstance(server, dict) else 1
    return workers if backend == "memory" and isinstance(workers, int) and workers > 1 else 1


def _split_warnings(deployment: Mapping[str, Any], workers: int) -> list[str]:
    """Limits too small to split across ``workers`` processes (``routing.memory`` gives each
    1/workers, at least one slot): the split would exceed them, or never admit anything."""
    out = []
    concurrent, rpm = deployment.get("max_concurrent"), deployment.get("rpm")
    if isinstance(concurrent, int) and 0 < concurrent < workers:
        out.append(f"max_concurrent = {concurrent} is below server.workers = {workers}: each "
                   f"worker keeps one slot, so together they may run {workers} requests at once "
                   'here; use [state] backend = "redis" for an exact limit')
    if isinstance(rpm, int) and 0 < rpm < workers:
        out.append(f"rpm = {rpm} is below server.workers = {workers}: each worker's share is "
                   "under one request a minute, so this deployment never takes a request; "
                   'raise it or use [state] backend = "redis"')
    return out


def _rule(rule: dict[str, Any], here: KeyPath, origins: ValueOrigins, providers: Mapping[str, int],
          groups: set[str]) -> list[Problem]:
    out = []
    when = rule.get("when")
    if isinstance(when, str):
        try:
            compile_rule(when)
        except RuleError as exc:
            path = (*here, "when")
            out.append(Problem(f"{exc.message} at column {exc.column}", path,
                               origin_of(origins, path)))
    provider, group = rule.get("provider"), rule.get("group")
    if (provider is None) == (group is None):
        out.append(Problem("give exactly one of `provider` and `group`", here,
                           origin_of(origins, here)))
    elif isinstance(provider, str) and provider not in providers:
        path = (*here, "provider")
        out.append(Problem(f"unknown provider `{provider}`", path, origin_of(origins, path)))
    elif isinstance(group, str) and group not in groups:
        path = (*here, "group")
        out.append(Problem(f"unknown group `{group}` (expected a [[routing.group]] name or "
                           "alias, or a model a provider lists)", path, origin_of(origins, path)))
    return out


def check_cache(data: Mapping[str, Any], origins: ValueOrigins) -> list[Problem]:
    """``[cache]``: each ``[[cache.rules]]`` gives exactly one of ``cache_if`` and ``skip_if``,
    and it compiles; the Redis backend needs ``[state] url`` (always has a default)."""
    out: list[Problem] = []
    cache = data.get("cache")
    if not isinstance(cache, dict):
        return out
    for index, rule in enumerate(_list(cache.get("rules"))):
        if not isinstance(rule, dict):
            continue
        here: KeyPath = ("cache", "rules", index)
        given = [name for name in ("cache_if", "skip_if") if name in rule]
        if len(given) != 1:
            out.append(Problem("give exactly one of `cache_if` and `skip_if`", here,
                               origin_of(origins, here)))
            continue
        text = rule[given[0]]
        if isinstance(text, str):
            try:
                compile_rule(text)
            except RuleError as exc:
                path = (*here, given[0])
                out.append(Problem(f"{exc.message} at column {exc.column}", path,
                                   origin_of(origins, path)))
    return out
