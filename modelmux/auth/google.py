"""Google OAuth access tokens for Vertex AI: credentials loading, a token cache, refresh.

``GoogleTokenSource`` keeps one access token fresh (``auth.refresh.RefreshAhead``), fetching it
in a worker thread (google-auth's requests transport blocks). Which request needs the token,
and what a 401 means, is the provider's business.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import json
import os
import time
from collections.abc import Callable
from typing import Any

import google.auth
import google.auth.exceptions
from google.auth.credentials import Credentials
from google.oauth2 import service_account

from modelmux.auth.refresh import REFRESH_MARGIN, RefreshAhead
from modelmux.errors import UpstreamAuthFailed
from modelmux.upstream.errors import UpstreamConnectError

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


class CredentialsError(ValueError):
    """Configured Google credentials cannot be read; the message names the source."""


def credentials_from_info(info: dict[str, Any], source: str) -> Credentials:
    """Credentials for a parsed key file: service account, or any type google-auth loads.

    Raises:
        CredentialsError: not a usable credentials document.
    """
    try:
        if info.get("type") == "service_account":
            make = service_account.Credentials.from_service_account_info
            creds: Credentials = make(  # type: ignore[no-untyped-call]
                info, scopes=[CLOUD_PLATFORM]
            )
            return creds
        creds, _ = google.auth.load_credentials_from_dict(  # type: ignore[no-untyped-call]
            info, scopes=[CLOUD_PLATFORM]
        )
        return creds
    except (ValueError, KeyError, google.auth.exceptions.GoogleAuthError) as exc:
        raise CredentialsError(f"{source}: not usable Google credentials: {exc}") from None


def load_credentials(
    *, file: str | None = None, json_text: str | None = None, env: str | None = None
) -> Credentials | None:
    """Credentials from a key file, inline JSON, or an env var holding base64 JSON; None = ADC.

    Raises:
        CredentialsError: the source is missing, unreadable or not credentials JSON.
    """
    if file is not None:
        source = f"credentials_file {file!r}"
        try:
            with open(os.path.expanduser(file), "rb") as handle:
                text = handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialsError(f"{source}: cannot read: {exc}") from None
    elif json_text is not None:
        source, text = "credentials_json", json_text
    elif env is not None:
        source = f"credentials_env {env!r}"
        encoded = os.environ.get(env)
        if encoded is None:
            raise CredentialsError(f"{source}: environment variable {env} is not set")
        try:
            text = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise CredentialsError(f"{source}: not base64-encoded JSON: {exc}") from None
    else:
        return None
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise CredentialsError(f"{source}: not JSON: {exc}") from None
    if not isinstance(info, dict):
        raise CredentialsError(f"{source}: expected a JSON object")
    return credentials_from_info(info, source)


class GoogleTokenSource(RefreshAhead[str]):
    """One cached access token, kept fresh by ``RefreshAhead``; fetched in a worker thread.

    ``credentials`` None means Application Default Credentials, resolved on first use (in the
    worker thread, since it may ask the metadata server). ``clock`` is wall-clock seconds.
    """

    what = "Google access token"

    def __init__(
        self,
        credentials: Credentials | None,
        *,
        label: str = "vertex",
        margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(label=label, margin=margin, clock=clock)
        self._credentials = credentials
        self._session: Any = None  # a requests.Session, made in the worker thread on first use
        self._work: asyncio.Future[tuple[str, datetime.datetime | None]] | None = None

    token = RefreshAhead.current
    """A valid access token; waits only when none is held or it has expired. Raises
    ``UpstreamAuthFailed`` when Google refused the credentials or there are none,
    ``UpstreamConnectError`` when the token endpoint could not be reached."""

    async def aclose(self) -> None:
        """Cancel a refresh in flight, let its worker thread finish, then close the HTTP
        session it used."""
        await super().aclose()
        work = self._work
        if work is not None:
            await asyncio.wait([work])
            if not work.cancelled():
                work.exception()  # seen here, since the cancelled refresh no longer awaits it
        if self._session is not None:
            self._session.close()
            self._session = None

    async def _fetch(self) -> tuple[str, float | None]:
        work = self._work = asyncio.ensure_future(asyncio.to_thread(self._refresh_blocking))
        token, expiry = await asyncio.shield(work)  # a cancel leaves the thread to aclose
        return token, None if expiry is None else expiry.replace(tzinfo=datetime.UTC).timestamp()

    def _refresh_blocking(self) -> tuple[str, datetime.datetime | None]:
        """Runs in a worker thread; one at a time, so the credentials object is not shared."""
        try:
            import requests  # google-auth's "requests" transport; imported off the loop
            from google.auth.transport.requests import Request
        except ImportError as exc:
            raise UpstreamAuthFailed(
                f"{self.label}: Google credentials need the 'requests' package: {exc}"
            ) from None
        if self._session is None:
            self._session = requests.Session()
        request = Request(self._session)
        try:
            creds = self._credentials
            if creds is None:
                creds, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
                self._credentials = creds
            creds.refresh(request)  # type: ignore[no-untyped-call]
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise UpstreamAuthFailed(
                f"{self.label}: no Google credentials: set credentials_file, credentials_json "
                f"or credentials_env, or configure Application Default Credentials ({exc})"
            ) from None
        except google.auth.exceptions.TransportError as exc:
            raise UpstreamConnectError(
                f"{self.label}: cannot reach the Google token endpoint: {exc}",
                code="upstream_auth_unreachable",
            ) from None
        except (google.auth.exceptions.GoogleAuthError, ValueError) as exc:
            raise UpstreamAuthFailed(
                f"{self.label}: Google refused ModelMux's credentials: {exc}"
            ) from None
        token = creds.token
        if not isinstance(token, str) or not token:
            raise UpstreamAuthFailed(f"{self.label}: Google returned no access token")
        expiry = creds.expiry
        return token, expiry if isinstance(expiry, datetime.datetime) else None
