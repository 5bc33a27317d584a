"""Microsoft Entra ID access tokens for Azure OpenAI: client credentials or managed identity.

``EntraTokenSource`` keeps one token, fresh by ``auth.refresh.RefreshAhead`` (only the first
request, or one after the token expired or was refused, waits for a fetch). Tokens come over
the gateway's own connection pool:

- client credentials: ``POST {authority_host}/{tenant_id}/oauth2/v2.0/token`` (OAuth 2.0
  client credentials grant, scope ``https://cognitiveservices.azure.com/.default``);
- managed identity: ``GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=...`` with
  ``X-IDENTITY-HEADER`` (App Service, Container Apps, Functions), else the VM instance
  metadata endpoint with ``Metadata: true``; ``client_id`` picks a user-assigned identity.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from urllib.parse import quote, urlencode

import msgspec

from modelmux.auth.refresh import REFRESH_MARGIN, RefreshAhead
from modelmux.errors import Headers, ModelMuxError, UpstreamAuthFailed
from modelmux.upstream import ConnectionPool, Timeouts
from modelmux.upstream.errors import UpstreamConnectError

SCOPE = "https://cognitiveservices.azure.com/.default"
RESOURCE = "https://cognitiveservices.azure.com"
AUTHORITY = "https://login.microsoftonline.com"
IMDS = "http://169.254.169.254/metadata/identity/oauth2/token"
_TIMEOUTS = Timeouts(connect=5.0, first_byte=15.0, read=15.0, pool=5.0)
_MAX_BODY = 64 * 1024


class _TokenAnswer(msgspec.Struct):
    access_token: str = ""
    expires_in: int | str | None = None
    expires_on: int | str | None = None
    error: str | None = None
    error_description: str | None = None


_answer = msgspec.json.Decoder(_TokenAnswer)


def _seconds(value: int | str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class EntraTokenSource(RefreshAhead[str]):
    """One cached Entra ID token for one provider; ``clock`` is wall-clock seconds."""

    what = "Entra ID token"

    def __init__(self, pool: ConnectionPool, *, label: str, tenant_id: str | None = None,
                 client_id: str | None = None, client_secret: str | None = None,
                 authority_host: str = AUTHORITY, margin: float = REFRESH_MARGIN,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(label=label, margin=margin, clock=clock)
        self.pool = pool
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self.authority_host = authority_host.rstrip("/")

    @property
    def kind(self) -> str:
        """``client credentials`` or ``managed identity``: what the tokens are fetched with."""
        return "client credentials" if self.client_secret else "managed identity"

    token = RefreshAhead.current
    """A valid token; waits only when none is held or it has expired. Raises
    ``UpstreamAuthFailed`` when Entra ID refused the credentials, ``UpstreamConnectError`` when
    the token endpoint could not be reached."""

    async def _fetch(self) -> tuple[str, float]:
        started = self.clock()
        if self.client_secret:
            url = f"{self.authority_host}/{quote(self.tenant_id or '', safe='')}/oauth2/v2.0/token"
            form = {"grant_type": "client_credentials", "client_id": self.client_id or "",
                    "client_secret": self.client_secret, "scope": SCOPE}
            method, body = b"POST", urlencode(form).encode()
            headers: Headers = [(b"content-type", b"application/x-www-form-urlencoded")]
        else:
            method, body, url, headers = b"GET", b"", *self._identity_request()
        try:
            response = await self.pool.request(method, url, headers, body, _TIMEOUTS)
            async with response:
                status, payload = response.status, await response.read(_MAX_BODY)
        except ModelMuxError as exc:
            raise UpstreamConnectError(
                f"{self.label}: cannot reach the Entra ID token endpoint ({self.kind}): "
                f"{exc.message}", code="upstream_auth_unreachable") from None
        try:
            answer = _answer.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            answer = _TokenAnswer()
        if status != 200 or not answer.access_token:
            why = answer.error_description or answer.error or payload[:200].decode("utf-8",
                                                                                    "replace")
            raise UpstreamAuthFailed(
                f"{self.label}: Entra ID refused ModelMux's {self.kind} (HTTP {status}): {why}")
        lifetime = _seconds(answer.expires_in)
        if lifetime is None and (on := _seconds(answer.expires_on)) is not None:
            lifetime = on - started
        return answer.access_token, started + max(lifetime if lifetime is not None else 3600.0,
                                                  0.0)

    def _identity_request(self) -> tuple[str, Headers]:
        """The managed identity endpoint's URL and headers (App Service style, else IMDS)."""
        query = {"resource": RESOURCE}
        if self.client_id:
            query["client_id"] = self.client_id
        endpoint, secret = os.environ.get("IDENTITY_ENDPOINT"), os.environ.get("IDENTITY_HEADER")
        if endpoint and secret:
            url = f"{endpoint}?{urlencode({'api-version': '2019-08-01', **query})}"
            return url, [(b"x-identity-header", secret.encode("latin-1"))]
        url = f"{IMDS}?{urlencode({'api-version': '2018-02-01', **query})}"
        return url, [(b"metadata", b"true")]


class EntraAuth:
    """``Authorization: Bearer <token>`` from an ``EntraTokenSource``; a 401 drops the token
    and allows one more try with a fresh one."""

    def __init__(self, source: EntraTokenSource) -> None:
        self.source = source

    async def headers(self) -> Headers:
        return [(b"authorization", b"Bearer " + (await self.source.token()).encode("latin-1"))]

    def refresh(self, sent: Headers) -> bool:
        token = next((v[7:].decode("latin-1") for n, v in sent if n == b"authorization"), None)
        return self.source.invalidate(token)
