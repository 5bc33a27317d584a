"""Who may use the admin API: keys, roles, signed sessions and the keyless loopback mode."""

from __future__ import annotations

import msgspec
import pytest

from modelmux.api.access import SESSION_SECONDS, Access
from modelmux.config.schema import Config


def config(host: str = "127.0.0.1", **admin: str) -> Config:
    return msgspec.convert({"server": {"host": host}, "admin": admin}, Config)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("host", "enabled"), [("127.0.0.1", True), ("::1", True),
                                                ("0.0.0.0", False), ("192.0.2.7", False)])
def test_without_a_key_only_a_loopback_listener_is_open(host: str, enabled: bool) -> None:
    access = Access(config(host))
    assert access.open is enabled and access.enabled is enabled


def test_a_key_turns_the_open_mode_off_even_on_loopback() -> None:
    access = Access(config(key="k"))
    assert not access.open and access.enabled
    assert access.role_of_key(b"k") == "admin" and access.role_of_key(b"x") is None


def test_sessions_are_signed_expire_and_end_when_the_key_changes() -> None:
    clock = Clock()
    access = Access(config(key="k", viewer_key="v"), clock)
    value = access.issue("viewer")
    assert access.verify(value) == "viewer"
    _role, expiry, nonce, signature = value.split(".")
    assert access.verify(f"admin.{expiry}.{nonce}.{signature}") is None  # forged role
    assert access.verify(value + "x") is None
    assert Access(config(key="other", viewer_key="v"), clock).verify(value) is None
    assert Access(config(key="k", viewer_key="v"), clock).verify(value) == "viewer"  # workers
    clock.now += SESSION_SECONDS + 1
    assert access.verify(value) is None


def test_the_csrf_token_is_bound_to_its_session() -> None:
    access = Access(config(key="k"))
    one, two = access.issue("admin"), access.issue("admin")
    assert access.csrf(one) != access.csrf(two) and access.csrf(one) == access.csrf(one)


def test_the_cookie_is_http_only_same_site_strict_and_secure_under_tls() -> None:
    name, value = Access(config(key="k")).set_cookie("abc")
    assert name == b"set-cookie"
    assert b"HttpOnly" in value and b"SameSite=Strict" in value and b"Secure" not in value


def test_the_config_view_redacts_every_secret() -> None:
    from modelmux.config.redact import REDACTED, redact

    data = {"admin": {"key": "a", "viewer_key": "v"},
            "auth": {"master_key": "m", "postgres_dsn": "postgresql://u:pw@db/x"},
            "analytics": {"alert_webhook": "https://hooks.example/T/secret",
                          "smtp": {"password": "p", "username": "u"}},
            "provider": [{"api_key": "k", "headers": {"X-Api-Token": "t", "X-Trace": "ok"}}]}
    out = redact(data)
    text = repr(out)
    for secret in ("'a'", "'v'", "'m'", ":pw@", "secret", "'p'", "'k'", "'t'"):
        assert secret not in text, secret
    assert out["auth"]["postgres_dsn"].startswith("postgresql://u:")
    assert out["analytics"]["smtp"]["username"] == "u" and REDACTED in text
    assert out["provider"][0]["headers"]["X-Trace"] == "ok"


def test_an_address_that_keeps_guessing_is_refused_for_a_minute() -> None:
    from modelmux.api.access import MAX_FAILURES
    from modelmux.errors import RateLimited

    clock = Clock()
    access = Access(config(key="k"), clock)
    for _ in range(MAX_FAILURES):
        access.throttle("192.0.2.1:5000")
        access.failed("192.0.2.1:5000")
    with pytest.raises(RateLimited) as refused:
        access.throttle("192.0.2.1:6000")  # another port, same address
    assert dict(refused.value.headers)[b"retry-after"] == b"61"
    access.throttle("192.0.2.2:5000")  # other addresses are not affected
    clock.now += 61
    access.throttle("192.0.2.1:5000")


def test_addresses_that_never_failed_are_not_remembered() -> None:
    access = Access(config(key="k"))
    for port in range(100):
        access.throttle(f"192.0.2.{port}:1")
    assert access._failures == {}
