"""A fake Google OAuth 2.0 token endpoint that verifies service-account JWT assertions.

RFC 7523 §2.1 / Google "Using OAuth 2.0 for Server to Server Applications": the client posts
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<RS256 JWT>``; the fake
checks the signature against the generated key, the issuer, audience, scope and expiry, then
answers ``{"access_token", "expires_in", "token_type"}``. ``gate`` can hold answers back.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.http import FakeServer, Reply, Request, json_reply

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
CLIENT_EMAIL = "modelmux-test@fake-project.iam.gserviceaccount.com"


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    """One RSA key per test session, generated at test time."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeGoogleOAuth(FakeServer):
    """Issues ``ya29.fake-<n>`` tokens; ``valid(token)`` says whether the fake Vertex accepts it."""

    def __init__(self, *, expires_in: int = 3600) -> None:
        super().__init__()
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.rejections: list[str] = []
        self.gate: asyncio.Event | None = None
        self.key = rsa_key()

    @property
    def token_uri(self) -> str:
        return f"{self.origin}/token"

    def service_account_info(self, *, key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
        pem = (key or self.key).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "fake-project",
            "private_key_id": "kid-1",
            "private_key": pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "1234567890",
            "token_uri": self.token_uri,
        }

    def valid(self, token: str) -> bool:
        return token in self.issued and token not in self.revoked

    def revoke_all(self) -> None:
        self.revoked.update(self.issued)

    async def handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/token":
            return json_reply(404, {"error": "not_found"})
        problem = self._verify(request)
        if problem is not None:
            self.rejections.append(problem)
            return json_reply(400, {"error": "invalid_grant", "error_description": problem})
        if self.gate is not None:
            await self.gate.wait()
        token = f"ya29.fake-{len(self.issued) + 1}"
        self.issued.append(token)
        self._notify()
        return json_reply(200, {"access_token": token, "expires_in": self.expires_in,
                                "token_type": "Bearer"})

    def _verify(self, request: Request) -> str | None:
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return "expected a form body"
        form = parse_qs(request.body.decode())
        if form.get("grant_type") != [JWT_BEARER]:
            return f"unsupported grant_type {form.get('grant_type')}"
        assertion = (form.get("assertion") or [""])[0]
        try:
            head_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url_decode(head_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            signature = _b64url_decode(signature_b64)
        except ValueError:
            return "assertion is not a JWT"
        if header.get("alg") != "RS256" or header.get("kid") != "kid-1":
            return f"unexpected JWT header {header}"
        try:
            self.key.public_key().verify(signature, f"{head_b64}.{claims_b64}".encode(),
                                         padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "Invalid JWT Signature."
        now = time.time()
        if claims.get("iss") != CLIENT_EMAIL:
            return f"unexpected issuer {claims.get('iss')}"
        if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.token_uri):
            return f"unexpected audience {claims.get('aud')}"
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return f"scope {claims.get('scope')} lacks cloud-platform"
        if not claims.get("iat", now + 999) <= now + 60 < claims.get("exp", 0) + 60:
            return "JWT is not valid now"
        return None
