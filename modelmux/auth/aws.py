"""AWS credentials for Bedrock: the configured keys, else the standard chain, kept fresh.

The chain, first match wins (as the AWS SDKs document it): environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``); a web identity
token (``AWS_WEB_IDENTITY_TOKEN_FILE`` and ``AWS_ROLE_ARN``, exchanged with STS
AssumeRoleWithWebIdentity; ``AWS_ENDPOINT_URL_STS`` overrides the endpoint); the shared
credentials file (``AWS_SHARED_CREDENTIALS_FILE``, default ``~/.aws/credentials``) and config
file (``AWS_CONFIG_FILE``, ``~/.aws/config``) for profile ``AWS_PROFILE`` (static keys only);
container credentials (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` or ``..._RELATIVE_URI`` under
169.254.170.2, with ``AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)``); IMDSv2 (token ``PUT``, then
the role's credentials; ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` overrides the address). Fetched
over the gateway's own pool and kept fresh by ``auth.refresh.RefreshAhead``.
"""

from __future__ import annotations

import asyncio
import configparser
import datetime
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlencode
from xml.etree import ElementTree

import msgspec

from modelmux.auth.refresh import REFRESH_MARGIN, RefreshAhead
from modelmux.auth.sigv4 import AwsCredentials
from modelmux.errors import Headers, ModelMuxError, UpstreamAuthFailed
from modelmux.upstream import ConnectionPool, Timeouts
from modelmux.upstream.errors import UpstreamConnectError

log = logging.getLogger("modelmux.auth")

CONTAINER_HOST = "http://169.254.170.2"
IMDS = "http://169.254.169.254"
_TIMEOUTS = Timeouts(connect=2.0, first_byte=5.0, read=5.0, pool=2.0)
_MAX_BODY = 64 * 1024


class _Answer(msgspec.Struct, rename="pascal"):
    """Container and IMDS credentials: ``AccessKeyId``, ``SecretAccessKey``, ``Token``,
    ``Expiration`` (ISO 8601)."""

    access_key_id: str = ""
    secret_access_key: str = ""
    token: str | None = None
    expiration: str | None = None


_answer = msgspec.json.Decoder(_Answer)


def from_env(env: Mapping[str, str]) -> AwsCredentials | None:
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return AwsCredentials(key, secret, env.get("AWS_SESSION_TOKEN") or None)
    return None


def from_files(env: Mapping[str, str]) -> AwsCredentials | None:
    """Static keys of profile ``AWS_PROFILE`` (``default``) from the credentials file, else
    from the config file's ``[profile NAME]`` (``[default]``) section."""
    home = Path(env.get("HOME") or Path.home())
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    places = [(Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"),
               profile),
              (Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config"),
               profile if profile == "default" else f"profile {profile}")]
    for path, section in places:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error, UnicodeDecodeError) as exc:
            log.warning("cannot read AWS file %s: %s", path, exc)
            continue
        if parser.has_section(section):
            values = parser[section]
            key, secret = values.get("aws_access_key_id"), values.get("aws_secret_access_key")
            if key and secret:
                return AwsCredentials(key.strip(), secret.strip(),
                                      (values.get("aws_session_token") or "").strip() or None)
    return None


def expiry(text: str | None) -> float | None:
    """Unix seconds of an ISO 8601 ``Expiration`` (``2026-01-01T00:00:00Z``), None if absent."""
    if not text:
        return None
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


class AwsCredentialSource(RefreshAhead[AwsCredentials]):
    """One provider's AWS credentials; ``clock`` is wall-clock seconds, ``env`` the process
    environment (injectable for tests). Configured keys are held for good."""

    what = "AWS credentials"

    def __init__(self, pool: ConnectionPool, *, label: str,
                 static: AwsCredentials | None = None, env: Mapping[str, str] | None = None,
                 region: str = "", margin: float = REFRESH_MARGIN,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(label=label, margin=margin, clock=clock, held=static)
        self.pool = pool
        self.region = region
        self.static = static
        self.env = os.environ if env is None else env
        self.source = "config" if static is not None else ""

    credentials = RefreshAhead.current
    """Valid credentials; waits only when none are held or they have expired. Raises
    ``UpstreamAuthFailed`` when no source in the chain has credentials or one refused,
    ``UpstreamConnectError`` when a metadata endpoint is unreachable."""

    def invalidate(self, value: AwsCredentials | None = None) -> bool:
        """After a refused request: forget ``value`` unless they are the configured keys."""
        return self._held is not self.static and super().invalidate(value)

    async def _fetch(self) -> tuple[AwsCredentials, float | None]:
        found = from_env(self.env)
        source = "environment"
        if found is None:
            found, source = await self._web_identity(), "web identity"
        if found is None:
            found, source = await asyncio.to_thread(from_files, self.env), "shared files"
        if found is None:
            found, source = await self._container(), "container"
        if found is None:
            found, source = await self._imds(), "instance metadata"
        if found is None:
            raise UpstreamAuthFailed(
                f"{self.label}: no AWS credentials: set access_key_id and secret_access_key, "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a shared credentials profile, or run "
                "with a container or instance role")
        self.source = source
        return found, found.expires_at

    async def _get(self, method: bytes, url: str, headers: Headers, what: str,
                   body: bytes = b"") -> bytes:
        try:
            response = await self.pool.request(method, url, headers, body, _TIMEOUTS)
            async with response:
                status, body = response.status, await response.read(_MAX_BODY)
        except ModelMuxError as exc:
            raise UpstreamConnectError(f"{self.label}: cannot reach the {what}: {exc.message}",
                                       code="upstream_auth_unreachable") from None
        if status != 200:
            why = _xml_fields(body).get("Message", "")
            raise UpstreamAuthFailed(f"{self.label}: the {what} answered HTTP {status}"
                                     + (f": {why}" if why else ""))
        return body

    def _parse(self, body: bytes, what: str) -> AwsCredentials:
        try:
            answer = _answer.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            answer = _Answer()
        if not answer.access_key_id or not answer.secret_access_key:
            raise UpstreamAuthFailed(f"{self.label}: the {what} sent no credentials")
        return AwsCredentials(answer.access_key_id, answer.secret_access_key, answer.token,
                              expiry(answer.expiration))

    async def _web_identity(self) -> AwsCredentials | None:
        """STS AssumeRoleWithWebIdentity with the token file's contents (no signature)."""
        env = self.env
        token_file, role = env.get("AWS_WEB_IDENTITY_TOKEN_FILE"), env.get("AWS_ROLE_ARN")
        if not token_file or not role:
            return None
        try:
            token = (await asyncio.to_thread(Path(token_file).read_text)).strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UpstreamAuthFailed(f"{self.label}: cannot read AWS_WEB_IDENTITY_TOKEN_FILE: "
                                     f"{exc}") from None
        region = env.get("AWS_REGION") or self.region
        endpoint = env.get("AWS_ENDPOINT_URL_STS") or (
            f"https://sts.{region}.amazonaws.com" if region else "https://sts.amazonaws.com")
        form = urlencode({"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
                          "RoleArn": role, "WebIdentityToken": token,
                          "RoleSessionName": env.get("AWS_ROLE_SESSION_NAME")
                          or f"modelmux-{int(self.clock())}"}).encode()
        what = "STS web identity endpoint"
        answer = await self._get(b"POST", endpoint.rstrip("/") + "/", [
            (b"content-type", b"application/x-www-form-urlencoded")], what, form)
        fields = _xml_fields(answer)
        if not fields.get("AccessKeyId") or not fields.get("SecretAccessKey"):
            raise UpstreamAuthFailed(f"{self.label}: the {what} sent no credentials")
        return AwsCredentials(fields["AccessKeyId"], fields["SecretAccessKey"],
                              fields.get("SessionToken"), expiry(fields.get("Expiration")))

    async def _container(self) -> AwsCredentials | None:
        env = self.env
        full, relative = (env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
                          env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"))
        if not full and not relative:
            return None
        url = full or CONTAINER_HOST + str(relative)
        token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        if token_file:
            try:
                token = (await asyncio.to_thread(Path(token_file).read_text)).strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise UpstreamAuthFailed(f"{self.label}: cannot read "
                                         f"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: {exc}") from None
        headers: Headers = [(b"accept", b"application/json")]
        if token:
            headers.append((b"authorization", token.encode("latin-1")))
        what = "container credentials endpoint"
        return self._parse(await self._get(b"GET", url, headers, what), what)

    async def _imds(self) -> AwsCredentials | None:
        if self.env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
            return None
        base = (self.env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or IMDS).rstrip("/")
        what = "instance metadata service"
        token = await self._get(b"PUT", f"{base}/latest/api/token",
                                [(b"x-aws-ec2-metadata-token-ttl-seconds", b"21600")], what)
        auth: Headers = [(b"x-aws-ec2-metadata-token", token.strip())]
        roles = f"{base}/latest/meta-data/iam/security-credentials/"
        role = (await self._get(b"GET", roles, auth, what)).decode("latin-1").split()
        if not role:
            raise UpstreamAuthFailed(f"{self.label}: the instance has no IAM role")
        return self._parse(await self._get(b"GET", roles + role[0], auth, what), what)


def _xml_fields(body: bytes) -> dict[str, str]:
    """Leaf element texts of an STS (AWS query protocol) XML answer by local name; {} if the
    body is not XML. STS is the only XML this reads, over TLS from the configured endpoint."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return {}
    return {element.tag.rpartition("}")[2]: (element.text or "").strip()
            for element in root.iter() if len(element) == 0}
