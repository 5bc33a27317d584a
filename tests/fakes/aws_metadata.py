"""Fake AWS credential endpoints on loopback: the container credentials endpoint and IMDSv2.

Container (ECS/EKS): ``GET <uri>`` with the ``Authorization`` token answers ``AccessKeyId``,
``SecretAccessKey``, ``Token``, ``Expiration``. IMDSv2: ``PUT /latest/api/token`` with
``X-aws-ec2-metadata-token-ttl-seconds`` answers a session token; ``GET
/latest/meta-data/iam/security-credentials/`` (with ``X-aws-ec2-metadata-token``) names the
role, and ``.../<role>`` answers the credentials. STS: ``POST /`` with the form of
AssumeRoleWithWebIdentity answers its XML (``Credentials`` with ``AccessKeyId``,
``SecretAccessKey``, ``SessionToken``, ``Expiration``), or an ``ErrorResponse`` for a wrong
token. Each answer hands out the next key set.
"""

from __future__ import annotations

import datetime
import json
from urllib.parse import parse_qs

from tests.fakes.http import FakeServer, Reply, Request

ROLE = "gateway-role"


def key_set(n: int, expires: float) -> dict[str, str]:
    when = datetime.datetime.fromtimestamp(expires, datetime.UTC)
    return {"Code": "Success", "AccessKeyId": f"ASIAFAKE{n:012d}", "SecretAccessKey": f"secret-{n}",
            "Token": f"token-{n}", "Expiration": when.strftime("%Y-%m-%dT%H:%M:%SZ")}


class FakeCredentialEndpoints(FakeServer):
    """Both endpoints on one server; ``expires`` is when the next handed-out set expires."""

    def __init__(self, *, auth_token: str = "container-secret", expires: float = 0.0,
                 web_token: str = "oidc-token") -> None:
        super().__init__()
        self.auth_token = auth_token
        self.web_token = web_token
        self.expires = expires
        self.issued = 0

    def _credentials(self) -> Reply:
        self.issued += 1
        return Reply(200, [("content-type", "application/json")],
                     json.dumps(key_set(self.issued, self.expires)).encode())

    def _sts(self, request: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("WebIdentityToken") != self.web_token or not form.get("RoleArn"):
            return Reply(400, [("content-type", "text/xml")], (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                "<Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Incorrect token"
                "</Message></Error></ErrorResponse>").encode())
        self.issued += 1
        keys = key_set(self.issued, self.expires)
        xml = ('<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/'
               '2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials>'
               f'<AccessKeyId>{keys["AccessKeyId"]}</AccessKeyId>'
               f'<SecretAccessKey>{keys["SecretAccessKey"]}</SecretAccessKey>'
               f'<SessionToken>{keys["Token"]}</SessionToken>'
               f'<Expiration>{keys["Expiration"]}</Expiration></Credentials>'
               f'<SubjectFromWebIdentityToken>sub</SubjectFromWebIdentityToken>'
               "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>")
        return Reply(200, [("content-type", "text/xml")], xml.encode())

    async def handle(self, request: Request) -> Reply:
        if request.path == "/" and request.method == "POST":
            return self._sts(request)
        if request.path == "/container/creds" and request.method == "GET":
            if request.headers.get("authorization") != self.auth_token:
                return Reply(401, body=b"unauthorized")
            return self._credentials()
        if request.path == "/latest/api/token":
            if request.method != "PUT" or "x-aws-ec2-metadata-token-ttl-seconds" not in (
                    request.headers):
                return Reply(400, body=b"bad token request")
            return Reply(200, body=b"imds-session")
        if request.headers.get("x-aws-ec2-metadata-token") != "imds-session":
            return Reply(401, body=b"IMDSv2 token required")
        if request.path == "/latest/meta-data/iam/security-credentials/":
            return Reply(200, body=ROLE.encode())
        if request.path == f"/latest/meta-data/iam/security-credentials/{ROLE}":
            return self._credentials()
        return Reply(404, body=b"not found")
