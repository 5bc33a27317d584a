"""A fake Microsoft Entra ID token service: client credentials and managed identity.

``POST /{tenant}/oauth2/v2.0/token`` takes the OAuth 2.0 client credentials form (Microsoft
identity platform v2.0) and answers ``{"token_type": "Bearer", "expires_in", "access_token"}``;
a wrong secret is a 401 ``invalid_client`` with an ``AADSTS`` description. ``GET /msi/token``
is the App Service managed identity endpoint (``api-version=2019-08-01``, ``resource``,
``X-IDENTITY-HEADER``), answering ``expires_on`` as a string epoch. Tokens are ``tok-1``,
``tok-2``, ... in the order issued.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http import FakeServer, Reply, Request, json_reply

TENANT = "contoso-tenant"
CLIENT_ID = "app-client-id"
SECRET = "app-secret-value-0xSECRET"
IDENTITY_HEADER = "identity-header-secret"


class FakeEntra(FakeServer):
    def __init__(self, lifetime: int = 3600) -> None:
        super().__init__()
        self.lifetime = lifetime
        self.issued: list[str] = []

    def _token(self) -> str:
        token = f"tok-{len(self.issued) + 1}"
        self.issued.append(token)
        return token

    async def handle(self, request: Request) -> Reply:
        url = urlsplit(request.path)
        if request.method == "POST" and url.path == f"/{TENANT}/oauth2/v2.0/token":
            form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
            if form.get("grant_type") != "client_credentials" or \
                    form.get("scope") != "https://cognitiveservices.azure.com/.default":
                return json_reply(400, {"error": "invalid_request",
                                        "error_description": "AADSTS900144: bad form"})
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != SECRET:
                return json_reply(401, {"error": "invalid_client", "error_description":
                                        "AADSTS7000215: Invalid client secret provided."})
            return json_reply(200, {"token_type": "Bearer", "expires_in": self.lifetime,
                                    "ext_expires_in": self.lifetime,
                                    "access_token": self._token()})
        if request.method == "GET" and url.path == "/msi/token":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if request.headers.get("x-identity-header") != IDENTITY_HEADER or \
                    query.get("api-version") != "2019-08-01" or \
                    query.get("resource") != "https://cognitiveservices.azure.com":
                return json_reply(400, {"error": "invalid_request"})
            return json_reply(200, {"access_token": self._token(), "token_type": "Bearer",
                                    "resource": query["resource"],
                                    "expires_on": str(int(time.time()) + self.lifetime)})
        return json_reply(404, {"error": "not_found"})
