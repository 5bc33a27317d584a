"""The cache key: stable for the same request, different whenever something that decides the
answer differs, blind to labels; namespaces; the request's cache directives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelmux.cache.keys import (
    NONE,
    Directives,
    deployment_set,
    directives,
    namespace,
    request_key,
)
from modelmux.errors import InvalidRequest
from modelmux.tenancy.records import Identity, Key, Team

DEPLOYMENTS = (("up", "gpt-x"), ("backup", "gpt-y"))
BASE: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                        "temperature": 0}


def key(body: dict[str, Any], *, space: str = "global", door: str = "openai.chat",
        form: str = "json", deployments: tuple[tuple[str, str], ...] = DEPLOYMENTS) -> str:
    return request_key(space, door, form, deployment_set(deployments), json.dumps(body).encode())


def test_the_same_request_has_the_same_key_whatever_its_labels() -> None:
    first = key(BASE)
    assert first == key(dict(BASE))
    assert first.startswith("global:")
    labelled = {**BASE, "user": "alice", "metadata": {"run": "7"}, "store": True,
                "stream": False, "model": "alias-of-m"}
    assert key(labelled) == first
    assert key(BASE, deployments=tuple(reversed(DEPLOYMENTS))) == first  # order of the group


@pytest.mark.parametrize("change", [
    {"messages": [{"role": "user", "content": "hi!"}]},
    {"temperature": 0.5},
    {"seed": 7},
    {"top_p": 0.9},
    {"max_tokens": 10},
    {"tools": [{"type": "function", "function": {"name": "f"}}]},
    {"tool_choice": "none"},
    {"response_format": {"type": "json_object"}},
    {"stream_options": {"include_usage": True}},
    {"n": 2},
    {"stop": ["x"]},
])
def test_what_decides_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    assert key({**BASE, **change}) != key(BASE)


def test_door_form_deployments_and_space_change_the_key() -> None:
    base = key(BASE)
    assert key(BASE, door="anthropic.messages") != base
    assert key(BASE, form="sse") != base
    assert key(BASE, deployments=(("up", "gpt-x"),)) != base
    assert key(BASE, space="team:a") != key(BASE, space="team:b")


def test_key_order_inside_the_body_does_not_matter_at_the_top_level() -> None:
    swapped = {"temperature": 0, "messages": BASE["messages"], "model": "m"}
    assert key(swapped) == key(BASE)


def test_two_bodies_each_count() -> None:
    one = json.dumps(BASE).encode()
    two = json.dumps({**BASE, "top_k": 3}).encode()
    group = deployment_set(DEPLOYMENTS)
    assert request_key("g", "d", "json", group, one, one) != request_key(
        "g", "d", "json", group, one, two)


def identity(team: str | None, key_id: str = "k1") -> Identity:
    return Identity(kind="key", label="mm_abc", role="user",
                    key=Key(id=key_id, prefix="mm_abc", hash="0" * 64, team_id=team),
                    team=Team(id=team, name=team) if team else None)


def test_namespaces_follow_the_setting() -> None:
    assert namespace(None, "team") == "global"
    assert namespace(identity("red"), "global") == "global"
    assert namespace(identity("red"), "team") == "team:red"
    assert namespace(identity("red"), "key") == "key:k1"
    assert namespace(identity(None), "team") == "key:k1"  # no team: its own key's space
    master = Identity(kind="master", label="master", role="admin")
    assert namespace(master, "team") == "master:master"


def test_directives() -> None:
    assert directives([]) is NONE
    assert directives([(b"cache-control", b"No-Cache")]) == Directives(no_cache=True)
    assert directives([(b"cache-control", b"max-age=0, no-store")]) == Directives(no_store=True)
    assert directives([(b"x-modelmux-cache-ttl", b" 30 ")]) == Directives(ttl=30.0)
    for bad in (b"0", b"-1", b"soon", b"inf", b"nan"):
        with pytest.raises(InvalidRequest) as caught:
            directives([(b"x-modelmux-cache-ttl", bad)])
        assert caught.value.status == 400 and caught.value.code == "invalid_header_value"
