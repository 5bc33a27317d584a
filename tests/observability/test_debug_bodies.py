"""``[logging] debug_bodies``: bodies at DEBUG with every credential redacted when on; when
off (the default), no body and no prompt in any log even at DEBUG."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import msgspec
import pytest

from modelmux.api.app import App
from modelmux.cli.reloader import changes
from modelmux.config.extras import missing_extra
from modelmux.config.providers import MockProviderConfig
from modelmux.config.schema import Config, LoggingConfig, TelemetryConfig
from modelmux.observability.bodies import (
    MAX_BODY,
    REDACTED,
    StreamBodies,
    redact_headers,
    redact_json,
    redact_text,
)
from tests.conftest import Runner
from tests.observability.helpers import (
    ANSWER,
    ANTHROPIC_KEY,
    CLAUDE_ANSWER,
    UPSTREAM_KEY,
    chat_body,
    gateway,
    request,
)

CHAT = "/v1/chat/completions"
PROMPT = "PROMPT-7f3a tell me about foxes"
CLIENT_KEY = "sk-client-SECRET-9c9c9c9c"
BODY_KEY = "sk-proj-BODYSECRET0123456789"
GOOGLE_KEY = "AIzaSyA-BODYSECRET-0123456789abcdefg"
TOKEN = "opaque-token-value-42"
SECRETS = (CLIENT_KEY, BODY_KEY, GOOGLE_KEY, TOKEN, UPSTREAM_KEY, ANTHROPIC_KEY)


def _body(model: str, stream: bool) -> dict[str, object]:
    """A chat body carrying secrets where careless clients put them."""
    payload = chat_body(model, stream=stream, content=PROMPT)
    payload["metadata"] = {"api_key": BODY_KEY, "note": f"key {GOOGLE_KEY} inline"}
    payload["user"] = f"Bearer {TOKEN}"
    return payload


def _debug_bodies(config: Config) -> Config:
    return msgspec.structs.replace(config, logging=LoggingConfig(level="debug",
                                                                 debug_bodies=True))


def _send_all(run: Runner, *, on: bool) -> None:
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}

    async def main() -> None:
        async with gateway(change=_debug_bodies if on else None) as (_, port, _, _):
            for model in ("gpt-x", "claude-x", "mock"):
                for stream in (False, True):
                    status, _, _ = await request(port, "POST", CHAT, _body(model, stream), auth)
                    assert status == 200

    run(main())


def _rendered(record: logging.LogRecord) -> str:
    return record.getMessage() + json.dumps(vars(record), default=str)


def test_bodies_are_logged_redacted_when_on(run: Runner, logs: pytest.LogCaptureFixture) -> None:
    _send_all(run, on=True)
    bodies = [r for r in logs.records if r.name == "modelmux.bodies"]
    assert all(r.levelno == logging.DEBUG for r in bodies)
    kinds = [r.body_kind for r in bodies]  # type: ignore[attr-defined]
    # six client requests and responses; upstream bodies for the four non-mock calls
    assert kinds.count("request") == 6 and kinds.count("response") == 6
    assert kinds.count("upstream") == 4
    text = "\n".join(r.getMessage() for r in bodies)
    assert text.count(PROMPT) == 6 + 4  # the prompt, in the client and upstream bodies
    assert ANSWER.text in text and CLAUDE_ANSWER.text in text
    assert "authorization: [REDACTED]" in text and "x-api-key: [REDACTED]" in text
    assert '"api_key": "[REDACTED]"' in text and f"key {REDACTED} inline" in text
    assert f'"prompt_tokens": {ANSWER.prompt_tokens}' in text  # usage counts are not secrets
    assert f'"prompt_tokens": {CLAUDE_ANSWER.prompt_tokens}' in text
    for record in logs.records:
        for secret in SECRETS:
            assert secret not in _rendered(record), (record.name, secret)
    assert all(r.request_id for r in bodies)  # type: ignore[attr-defined]


def test_no_body_and_no_prompt_is_logged_when_off(run: Runner,
                                                  logs: pytest.LogCaptureFixture) -> None:
    _send_all(run, on=False)
    assert logs.records  # DEBUG lines were written ...
    assert not [r for r in logs.records if r.name == "modelmux.bodies"]
    for record in logs.records:  # ... but none holds a prompt, an answer or a secret
        rendered = _rendered(record)
        for text in (PROMPT, ANSWER.text, CLAUDE_ANSWER.text, *SECRETS):
            assert text not in rendered, (record.name, text)


def test_redact_json_walks_members_and_values() -> None:
    body = json.dumps({"model": "m", "api_key": "abc", "nested": [{"Authorization": "x",
                       "client_secret": "y", "password": "z", "fine": "sk-abcdefghijklmnop",
                       "ok": 3, "refresh_token": None}]}).encode()
    out = json.loads(redact_json(body))
    assert out["api_key"] == REDACTED and out["model"] == "m"
    nested = out["nested"][0]
    assert nested["Authorization"] == nested["client_secret"] == nested["password"] == REDACTED
    assert nested["fine"] == REDACTED and nested["ok"] == 3 and nested["refresh_token"] is None


def test_redact_json_keeps_usage_counts_and_redacts_token_credentials() -> None:
    openai = {"max_tokens": 64, "max_completion_tokens": 64, "usage": {
        "prompt_tokens": 17, "completion_tokens": 9, "total_tokens": 26,
        "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {
            "reasoning_tokens": 2}}}
    anthropic = {"max_tokens": 32, "usage": {"input_tokens": 5, "output_tokens": 6,
                                               "cache_creation_input_tokens": 7,
                                               "cache_read_input_tokens": 8}}
    gemini = {"generationConfig": {"maxOutputTokens": 99}, "usageMetadata": {
        "promptTokenCount": 4, "candidatesTokenCount": 5, "totalTokenCount": 9,
        "thoughtsTokenCount": 1, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}]}}
    for document in (openai, anthropic, gemini):
        assert json.loads(redact_json(json.dumps(document).encode())) == document
    secrets = {"access_token": "at-1", "refresh_token": "rt-1", "id_token": "it-1",
               "x-auth-token": "xt-1", "token": "t-1", "session_token": "st-1",
               "api_key": "k-1", "x-api-key": "k-2", "password": "p-1", "secret": "s-1",
               "client_secret": "cs-1", "credentials": {"private_key": "pk-1"}}
    out = json.loads(redact_json(json.dumps({"auth": secrets}).encode()))
    assert out["auth"] == {name: REDACTED for name in secrets}


def test_redact_text_and_headers() -> None:
    assert redact_text("x sk-ant-abcdef123456 y ya29.tok-en z") == f"x {REDACTED} y {REDACTED} z"
    assert redact_text("Bearer abcdefgh12345 and eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig") == \
        f"{REDACTED} and {REDACTED}"
    assert redact_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----") == REDACTED
    assert redact_json(b"not json sk-live-abcdefgh1234") == f"not json {REDACTED}"
    headers = [(b"authorization", b"Bearer k"), (b"x-goog-api-key", b"k"), (b"accept", b"*/*")]
    assert redact_headers(headers) == \
        f"authorization: {REDACTED}; x-goog-api-key: {REDACTED}; accept: */*"


def test_long_bodies_are_cut() -> None:
    big = b'{"a": "' + b"x" * (MAX_BODY * 2) + b'"}'
    assert redact_json(big).endswith(f"({len(big) - MAX_BODY} more bytes)")
    kept = StreamBodies()
    for _ in range(3):
        kept.feed(b"y" * MAX_BODY)
    assert kept.text() == "y" * MAX_BODY + f" ... ({2 * MAX_BODY} more bytes)"


def test_a_reload_diff_never_shows_telemetry_header_values() -> None:
    old = Config(telemetry=TelemetryConfig(headers={"x-honeycomb-team": "old-team-key"}))
    new = Config(telemetry=TelemetryConfig(headers={"x-honeycomb-team": "new-team-key"},
                                           sample_ratio=0.5))
    lines = changes(old, new)
    assert lines == ["telemetry.headers.x-honeycomb-team: (secret changed)",
                     "telemetry.sample_ratio: 1.0 -> 0.5"]


@pytest.fixture
def bodies_logger() -> Iterator[logging.Logger]:
    """``modelmux.bodies``, its own level put back afterwards."""
    logger = logging.getLogger("modelmux.bodies")
    level = logger.level
    try:
        yield logger
    finally:
        logger.setLevel(level)


def test_a_quiet_bodies_logger_means_no_body_work(run: Runner, bodies_logger: logging.Logger,
                                                  logs: pytest.LogCaptureFixture) -> None:
    """Decided when the App is built: at INFO no watcher wraps a call, so no stream keeps
    its chunks; with tracing on too, the watcher has no body log."""
    config = Config(provider=[MockProviderConfig(name="mock", models=["mock"])],
                    logging=LoggingConfig(level="info", debug_bodies=True))
    traced = msgspec.structs.replace(config, telemetry=TelemetryConfig(
        enabled=True, endpoint="http://127.0.0.1:9/v1/traces"))

    async def main() -> None:
        bodies_logger.setLevel(logging.INFO)  # the rest of modelmux logs DEBUG (``logs``)
        quiet = App(config)
        assert quiet.watcher is None
        assert "no body is logged" in logs.text
        bodies_logger.setLevel(logging.DEBUG)
        loud = App(config)
        assert loud.watcher is not None and loud.watcher.bodies is not None
        for app in (quiet, loud):
            await app.aclose()
        if missing_extra() is None:
            bodies_logger.setLevel(logging.INFO)
            tracing = App(traced)
            assert tracing.watcher is not None and tracing.watcher.bodies is None
            await tracing.aclose()

    run(main())
