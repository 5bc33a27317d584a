"""The pure rules: where the credential is, JWT shape, model lists, failure windows."""

from __future__ import annotations

from modelmux.tenancy.access import (
    FailureWindow,
    allows,
    client_host,
    credential,
    looks_like_jwt,
)
from modelmux.tenancy.records import Identity, Key, Team, User


def test_credential_from_bearer_or_x_api_key() -> None:
    assert credential([(b"authorization", b"Bearer sk-mm-abc")]) == b"sk-mm-abc"
    assert credential([(b"authorization", b"bearer  sk-mm-abc ")]) == b"sk-mm-abc"
    assert credential([(b"x-api-key", b"sk-mm-xyz")]) == b"sk-mm-xyz"
    assert credential([(b"authorization", b"Basic Zm9v")]) is None
    assert credential([(b"authorization", b"Bearer ")]) is None
    assert credential([]) is None


def test_jwt_shape() -> None:
    assert looks_like_jwt(b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
    assert not looks_like_jwt(b"sk-mm-abcdef")
    assert not looks_like_jwt(b"a.b")
    assert not looks_like_jwt(b"a.b.c.d")
    assert not looks_like_jwt(b"a b.c.d")


def test_client_host_drops_the_port() -> None:
    assert client_host("10.0.0.1:5555") == "10.0.0.1"
    assert client_host("::1:5555") == "::1"
    assert client_host("unix") == "unix"


def _key(models: tuple[str, ...] | None) -> Key:
    return Key(id="k", prefix="sk-mm-aaaaaa", hash="h", models=models)


def test_models_by_name_alias_target_or_glob_at_every_level() -> None:
    ident = Identity(kind="key", label="p", role="user", key=_key(("gpt-4o*", "fast")))
    assert allows(ident, ["gpt-4o-mini"])
    assert allows(ident, ["fast"])
    assert allows(ident, ["slow", "gpt-4o"])  # an alias whose target is listed
    assert not allows(ident, ["claude-3"])
    team = Team(id="t", name="t", models=("gpt-4o",))
    both = Identity(kind="key", label="p", role="user", key=_key(("gpt-4o*",)), team=team)
    assert allows(both, ["gpt-4o"]) and not allows(both, ["gpt-4o-mini"])
    user = User(id="u", name="u", models=())
    assert not allows(Identity(kind="key", label="p", role="user", key=_key(None), user=user),
                      ["gpt-4o"])
    assert allows(Identity(kind="key", label="p", role="user", key=_key(None)), ["anything"])


def test_failure_window_blocks_after_the_budget_for_the_rest_of_the_minute() -> None:
    window = FailureWindow(3)
    for _ in range(3):
        assert window.blocked("a", 100.0) is None
        window.failed("a", 100.0)
    assert window.blocked("a", 110.0) == 50.0
    assert window.blocked("b", 110.0) is None
    assert window.blocked("a", 160.0) is None  # a new minute
    window.failed("a", 160.0)
    assert window.blocked("a", 161.0) is None


def test_failure_window_memory_is_bounded() -> None:
    window = FailureWindow(1, max_addresses=16)
    for n in range(1000):
        window.failed(f"h{n}", 0.0)
    assert len(window._seen) <= 16
