"""``/dashboard``: the web UI's static files and its sign-in, served by the gateway itself.

The files are package data (``modelmux/web/static``), read once on first use; nothing is
fetched from elsewhere, so the page works offline. Every answer carries a strict
Content-Security-Policy (scripts and styles from this origin only, no inline code, no
framing). The page holds no state of its own: it reads ``/admin/events`` and the admin API
with the session cookie that signing in here sets.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

from modelmux.api.access import session_of
from modelmux.api.admin_gate import gate, role_of_token
from modelmux.api.responses import send_json
from modelmux.errors import Headers, InvalidRequest, NotFound, PermissionDenied

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

log = logging.getLogger("modelmux.admin")

PREFIX = "/dashboard/"
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS: Headers = [
    (b"content-security-policy", CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
class SignIn(msgspec.Struct):
    key: str = ""


def _check_on(app: Services, exchange: Exchange) -> None:
    if not app.access.enabled:
        raise NotFound(f"Invalid URL ({exchange.method} {exchange.path}): the dashboard is off; "
                       "set [admin] key to turn it on.", code="unknown_url")


async def _send_file(app: Services, exchange: Exchange, name: str) -> None:
    _check_on(app, exchange)
    found = app.static.get(name)
    if found is None:
        raise NotFound(f"Invalid URL ({exchange.method} {exchange.path})", code="unknown_url")
    kind, body = found
    await exchange.respond(200, [(b"content-type", kind), *SECURITY_HEADERS], body)


async def index(app: Services, exchange: Exchange) -> None:
    """The single page (its views are chosen by the URL fragment)."""
    await _send_file(app, exchange, "index.html")


async def asset(app: Services, exchange: Exchange) -> None:
    """A script, style sheet or licence file of the page."""
    await _send_file(app, exchange, exchange.path[len(PREFIX):])


async def session(app: Services, exchange: Exchange) -> None:
    """GET: who this browser is signed in as (role None: nobody), with the CSRF token for its
    changes (with no credential configured on loopback, a session is opened here). POST ``{"key": ...}``:
    sign in."""
    _check_on(app, exchange)
    access = app.access
    if exchange.method == "POST":
        access.check_origin(exchange)
        try:
            given = msgspec.json.decode(await exchange.read_body(), type=SignIn)
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise InvalidRequest("Sign in with a JSON body {\"key\": \"...\"}.") from None
        access.throttle(exchange.client)
        role = "admin" if access.open else access.role_of_key(given.key.encode())
        if role is None and app.auth is not None and given.key:
            role, _ = await role_of_token(app, given.key.encode(), exchange)
        if role not in ("admin", "viewer"):
            access.failed(exchange.client)
            log.warning("dashboard: failed sign-in from %s", exchange.client)
            raise PermissionDenied("That is not an admin or viewer key.", code="invalid_admin_key")
        await _opened(app, exchange, access.issue(role), role)
        return
    current = session_of(exchange)
    role = access.verify(current) if current else None
    if role is not None and current is not None:
        await send_json(exchange, 200, {"role": role, "csrf": access.csrf(current),
                                        "open": access.open}, SECURITY_HEADERS)
    elif access.open:
        await _opened(app, exchange, access.issue("admin"), "admin")
    else:  # a 200, so the page's first look is not a console error
        await send_json(exchange, 200, {"role": None, "csrf": None, "open": False},
                        SECURITY_HEADERS)


async def _opened(app: Services, exchange: Exchange, value: str, role: str) -> None:
    body = {"role": role, "csrf": app.access.csrf(value), "open": app.access.open}
    await send_json(exchange, 200, body, [*SECURITY_HEADERS, app.access.set_cookie(value)])


async def sign_out(app: Services, exchange: Exchange) -> None:
    """Forget the session cookie in this browser (the signed value expires on its own)."""
    await gate(app, exchange, "viewer")
    await send_json(exchange, 200, {"signed_out": True},
                    [*SECURITY_HEADERS, app.access.set_cookie("", max_age=0)])
