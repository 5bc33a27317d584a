"""The SigV4 signer against botocore's ``SigV4Auth``, the reference, over generated requests.

Each example signs the same request with both at the same instant and compares the
``Authorization``, ``x-amz-date`` and ``x-amz-security-token`` headers byte for byte.
"""

from __future__ import annotations

import datetime
from unittest import mock
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.auth.sigv4 import AwsCredentials, SigV4Signer, canonical_uri, host_of

botocore = pytest.importorskip("botocore")
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SEGMENT = st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=0,
                  max_size=12)
MODEL_IDS = st.sampled_from(["anthropic.claude-3-5-sonnet-20241022-v2:0",
                             "meta.llama3-1-70b-instruct-v1:0", "amazon.titan-embed-text-v2:0",
                             "arn:aws:bedrock:us-east-1:123456789012:inference-profile/x.y:1"])
TOKEN = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
HEADER_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True).filter(
    lambda n: n.lower() not in {"host", "authorization", "x-amz-date", "x-amz-security-token",
                                "content-length", "x-amz-content-sha256", "date"})
HEADER_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(
    lambda v: v.strip() or "v")


def _path(segments: list[str], model: str | None, tail: str) -> str:
    parts = [quote(s, safe="") for s in segments]
    if model is not None:
        parts += ["model", quote(model, safe=""), tail]
    return "/" + "/".join(parts)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]], bytes]:
    scheme = draw(st.sampled_from(["https", "http"]))
    host = draw(st.sampled_from(["bedrock-runtime.us-east-1.amazonaws.com", "127.0.0.1:8443",
                                 "example.com:443", "Example.COM"]))
    model = draw(st.none() | MODEL_IDS)
    path = _path(draw(st.lists(SEGMENT, max_size=3)), model,
                 draw(st.sampled_from(["converse", "converse-stream", "invoke"])))
    if draw(st.booleans()):
        path += draw(st.sampled_from(["/", "/./x", "/a/../b", "//c"]))
    pairs = draw(st.lists(st.tuples(TOKEN, TOKEN), max_size=3))
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)
    url = f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
    names = draw(st.lists(HEADER_NAME, max_size=4, unique_by=str.lower))
    headers = [(n, draw(HEADER_VALUE)) for n in names]
    headers.append(("content-type", "application/json"))
    body = draw(st.binary(max_size=200))
    return url, headers, body


def botocore_sign(url: str, headers: list[tuple[str, str]], body: bytes,
                  creds: AwsCredentials, region: str, when: datetime.datetime) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    auth = SigV4Auth(Credentials(creds.access_key_id, creds.secret_access_key,
                                 creds.session_token), "bedrock", region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        auth.add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


CREDS = st.builds(AwsCredentials, st.from_regex(r"AKIA[A-Z0-9]{16}", fullmatch=True),
                  st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                          max_size=40),
                  st.none() | TOKEN)


@settings(max_examples=300, deadline=None)
@given(request=requests(), creds=CREDS,
       region=st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2"]),
       when=st.datetimes(min_value=datetime.datetime(2000, 1, 1),
                         max_value=datetime.datetime(2090, 1, 1)))
def test_signature_matches_botocore(request: tuple[str, list[tuple[str, str]], bytes],
                                    creds: AwsCredentials, region: str,
                                    when: datetime.datetime) -> None:
    url, headers, body = request
    when = when.replace(microsecond=0)
    ours = SigV4Signer(region, "bedrock").sign(
        "POST", url, [(n.encode(), v.encode()) for n, v in headers], body, creds,
        when.replace(tzinfo=datetime.UTC).timestamp())
    got = {n.decode().lower(): v.decode() for n, v in ours}
    theirs = botocore_sign(url, headers, body, creds, region, when)
    assert got["authorization"] == theirs["authorization"]
    assert got["x-amz-date"] == theirs["x-amz-date"]
    assert got.get("x-amz-security-token") == theirs.get("x-amz-security-token")
    assert got["host"] == host_of(url)


def test_model_id_colon_is_escaped_twice_in_the_canonical_uri() -> None:
    path = "/model/" + quote("anthropic.claude-v2:1", safe="") + "/converse"
    assert path == "/model/anthropic.claude-v2%3A1/converse"
    assert canonical_uri(path) == "/model/anthropic.claude-v2%253A1/converse"


def test_signing_key_is_derived_once_per_day() -> None:
    signer = SigV4Signer("us-east-1", "bedrock")
    key = signer.key("secret", "20260101")
    assert signer.key("secret", "20260101") is key
    assert signer.key("secret", "20260102") != key
    assert signer.key("other", "20260102") != signer.key("secret", "20260102")


def test_credentials_repr_hides_the_secret() -> None:
    creds = AwsCredentials("AKIAEXAMPLE", "s3cr3t-value", "tok3n-value")
    assert "s3cr3t" not in repr(creds) and "tok3n" not in repr(creds)
