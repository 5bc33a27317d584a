"""Checks for the provider settings that end up on the wire: base URLs and extra headers.

Run once at start-up, so a typo is a configuration error naming the setting instead of a
protocol error on the first request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from modelmux import __version__
from modelmux.config.load import ConfigError
from modelmux.errors import Headers
from modelmux.providers.env import expand_env
from modelmux.upstream import parse_url


# RFC 9110 §5.1 field-name = token; §5.5 field values carry no CR, LF or NUL.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def json_headers() -> Headers:
    """Headers every JSON POST to a provider carries.

    ``accept-encoding: identity`` because no header would allow any coding (RFC 9110
    §12.5.3), and bodies are relayed without decompression.
    """
    return [
        (b"content-type", b"application/json"),
        (b"accept-encoding", b"identity"),
        (b"user-agent", f"modelmux/{__version__}".encode()),
    ]


def merge_headers(*groups: Headers) -> Headers:
    """The headers of all ``groups``; a name set in a later group replaces earlier ones."""
    out: Headers = []
    for group in groups:
        names = {name for name, _ in group}
        out = [(name, value) for name, value in out if name not in names]
        out.extend(group)
    return out


def check_base_url(url: str, where: str) -> str:
    """``url`` without a trailing slash, once it is known to be an absolute http(s) URL.

    Raises:
        ConfigError: not an absolute http(s) URL, or it carries a query.
    """
    try:
        parse_url(url)
    except ValueError:
        raise ConfigError(f"{where}: base_url {url!r} is not an absolute http(s) URL") from None
    if "?" in url or "#" in url:
        raise ConfigError(f"{where}: base_url {url!r} must not have a query or fragment")
    return url.rstrip("/")


def extra_headers(headers: Mapping[str, str], where: str) -> Headers:
    """The configured extra headers, ``${ENV}``-expanded, as wire pairs.

    Raises:
        ConfigError: a bad header name or value, a framing header, or an unset variable.
    """
    out: Headers = []
    for name, raw in headers.items():
        lname = name.lower()
        if not _TOKEN.fullmatch(name):
            raise ConfigError(f"{where}: header name {name!r} is not a valid HTTP token")
        if lname in _FRAMING:
            raise ConfigError(f"{where}: header {name!r} is set by ModelMux itself")
        value = expand_env(raw, where=f"{where}: headers.{name}")
        if any(c in value for c in "\r\n\x00"):
            raise ConfigError(f"{where}: header {name!r} has a line break or NUL in its value")
        try:
            out.append((lname.encode("ascii"), value.encode("latin-1")))
        except UnicodeEncodeError:
            raise ConfigError(f"{where}: header {name!r} value is not latin-1 text") from None
    return out


def header_value(value: str, where: str) -> bytes:
    """``value`` as a header value's bytes.

    Raises:
        ConfigError: not latin-1 text, or it holds a line break or NUL.
    """
    if any(c in value for c in "\r\n\x00"):
        raise ConfigError(f"{where} has a line break or NUL in it")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError(f"{where} is not latin-1 text") from None
